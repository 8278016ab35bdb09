"""Schemathesis hooks of the schema-driven run (`tests/schema_run.rs`, `make test`).

The service under test verifies every CDS Hooks and `/api/v1` call like production does: an ES384
JWT from a trusted issuer, `aud` = the URL of the endpoint called, a `jti` used once (a replay is
refused). So every request sent gets a token of its own, signed here with the private key the test
wrote (a JWK with `d`), for the audience of the path actually called:

* `/cds-services` and `/cds-services/{id}`: that URL; `/cds-services/{id}/feedback`: that URL;
* `/api/v1/...`: `{base}/api/v1`;
* `/fhir/subscription-notification`: the Subscription's shared secret (not a JWT).

Schemathesis must know which requests carry credentials (its `ignored_auth` check removes them
or puts invalid ones and expects a refusal). The auth provider therefore marks a case with a
placeholder token; just before each request, `before_call` replaces a placeholder, or a token
minted here earlier (a case sent again), with a fresh one. A credential that Schemathesis removed
or replaced is left as it is.

`after_call` counts the answers by operation and status; the counts are written at exit to
`LRT_SCHEMA_TALLY`, which the test reads (every secured operation must have had answers other than
401: a run whose tokens were all refused proves nothing).

`csv_body` serializes the `text/csv` request bodies (the adjudication file of the validation),
a media type Schemathesis has no serializer for.

Environment (set by the test): `LRT_SCHEMA_BASE` (the service's public base URL),
`LRT_SCHEMA_KEY` (the private JWK file), `LRT_SCHEMA_ISS` (the issuer), `LRT_SCHEMA_SUBSCRIPTION_SECRET`,
`LRT_SCHEMA_TALLY` (where to write the counts).
"""

import atexit
import collections
import json
import os
import threading
import time
import uuid

import jwt
import schemathesis

BASE = os.environ["LRT_SCHEMA_BASE"].rstrip("/")
ISS = os.environ["LRT_SCHEMA_ISS"]
SUBSCRIPTION_SECRET = os.environ["LRT_SCHEMA_SUBSCRIPTION_SECRET"]
with open(os.environ["LRT_SCHEMA_KEY"], encoding="utf-8") as f:
    _JWK = json.load(f)
KID = _JWK["kid"]
KEY = jwt.algorithms.ECAlgorithm.from_jwk(json.dumps(_JWK))

PLACEHOLDER = "Bearer lrt-schema-run-token-placeholder"
_minted = set()
_lock = threading.Lock()
# (method, path template) -> status -> answers
_tally = collections.defaultdict(collections.Counter)


def audience(path: str) -> str:
    """The `aud` the service expects for a request to `path`."""
    if path.startswith("/api/v1"):
        return f"{BASE}/api/v1"
    return f"{BASE}{path}"


def mint(aud: str) -> str:
    now = int(time.time())
    claims = {"iss": ISS, "aud": aud, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}
    token = jwt.encode(claims, KEY, algorithm="ES384", headers={"kid": KID, "typ": "JWT"})
    value = f"Bearer {token}"
    with _lock:
        _minted.add(value)
    return value


@schemathesis.auth(refresh_interval=None)
class LrtAuth:
    """Marks the cases of secured operations; the credential itself is set in `before_call`."""

    def get(self, case, ctx):
        path = ctx.operation.path
        if path == "/fhir/subscription-notification":
            return f"Bearer {SUBSCRIPTION_SECRET}"
        if path.startswith("/cds-services") or path.startswith("/api/v1"):
            return PLACEHOLDER
        return None

    def set(self, case, data, ctx):
        if case.headers is None:
            case.headers = {}
        case.headers["Authorization"] = data


@schemathesis.hook
def before_call(context, case, kwargs):
    headers = case.headers
    if not headers:
        return
    current = headers.get("Authorization")
    with _lock:
        ours = current == PLACEHOLDER or current in _minted
    if ours:
        headers["Authorization"] = mint(audience(case.formatted_path))


@schemathesis.hook
def after_call(context, case, response):
    with _lock:
        _tally[f"{case.method.upper()} {case.operation.path}"][str(response.status_code)] += 1


@atexit.register
def _write_tally():
    with _lock:
        counts = {op: dict(sorted(statuses.items())) for op, statuses in sorted(_tally.items())}
    with open(os.environ["LRT_SCHEMA_TALLY"], "w", encoding="utf-8") as f:
        json.dump(counts, f, indent=1)


@schemathesis.serializer("text/csv")
def csv_body(ctx, value):
    """`text/csv` request bodies (the adjudication file of `POST /api/v1/quality/validation`),
    which Schemathesis does not serialize by itself: the document's schema is a string, sent as
    UTF-8 (lone surrogates kept, so the service sees bytes that are not UTF-8); a value of
    another type (a negative case) is sent as its JSON text."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return json.dumps(value).encode("utf-8")
