#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers for the tests and the demo.
#
# * LRT_TEST_DATABASE_URL set: nothing to do (the tests use it; it must allow CREATE DATABASE).
# * A server answers on 127.0.0.1:5432: nothing to do (tests connect as `postgres`, trust auth).
# * Otherwise, on Debian: install the `postgresql` package if missing, start its cluster and
#   allow local trust connections for the `postgres` role over TCP (a throw-away test machine).
set -euo pipefail

if [ -n "${LRT_TEST_DATABASE_URL:-}" ]; then
  exit 0
fi
if command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; then
  exit 0
fi
echo "PostgreSQL does not answer on 127.0.0.1:5432: installing/starting it (Debian)..." >&2
if ! command -v pg_ctlcluster >/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "run as root, or install PostgreSQL, or set LRT_TEST_DATABASE_URL" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
version=$(ls /etc/postgresql | sort -V | tail -1)
hba=/etc/postgresql/$version/main/pg_hba.conf
if ! grep -q "lrt-cds test access" "$hba"; then
  # Prepend: the first matching line wins.
  { echo "# lrt-cds test access (deploy/dev/ensure-postgres.sh): local trust, test machines only"
    echo "host all all 127.0.0.1/32 trust"
    echo "host all all ::1/128 trust"
    cat "$hba"; } > "$hba.new" && mv "$hba.new" "$hba"
fi
pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || pg_ctlcluster --skip-systemctl-redirect "$version" main reload
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 -p 5432 && exit 0
  sleep 1
done
echo "PostgreSQL did not start on 127.0.0.1:5432" >&2
exit 1
