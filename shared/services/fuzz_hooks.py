"""Schemathesis hooks for `make fuzz`: fuzzing.py loads this file through SCHEMATHESIS_HOOKS.
It runs inside Schemathesis's process and imports nothing of the course.

Logging in (FUZZ_LOGIN=1): a user of the fuzzer's own is signed up through the API and logged in;
every request carries its bearer token. Before each case the token is tried on GET /api/me, and
a new user is signed up when it no longer works (the fuzzer may have deleted the account).

Counting (FUZZ_COUNTS=file): per operation, the cases sent and how many carried the valid token.

One failure is accepted: JSON Schema counts a string's length in characters, bcrypt's limit is
72 bytes. So the schema says `maxLength: 72` and describes the byte rule in words, which no
fuzzer reads: a password of 72 "é" is valid by the schema, yet 144 bytes, and the API rightly
refuses it with a 422. That one refusal is accepted; every other schema-valid request the API
rejects still fails.
"""

import atexit
import json
import os
import secrets
import urllib.error
import urllib.request

import schemathesis

BYTE_RULE = "password must be at most 72 bytes long (UTF-8)"
SCHEMA_VALID_REQUEST_REJECTED = "ST202"
API = os.environ.get("FUZZ_API", "")
COUNTS: dict[str, dict[str, int]] = {}
current = {"token": ""}


@schemathesis.hook
def filter_failure(context, failure, case, response) -> bool:
    """False drops the failure: only ST202 answered by the 72-byte rule."""
    body = response.content.decode("utf-8", "replace")
    refused_for_bytes = response.status_code == 422 and BYTE_RULE in body
    return not (failure.code == SCHEMA_VALID_REQUEST_REJECTED and refused_for_bytes)


def call(method: str, path: str, body: dict | None = None, token: str = "") -> tuple[int, dict]:
    request = urllib.request.Request(f"{API}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as error:
        return error.code, {}


def sign_up_and_log_in() -> str:
    account = {"email": f"fuzz-{secrets.token_hex(6)}@example.com", "password": secrets.token_urlsafe(12)}
    status, body = call("POST", "/api/users", {"name": "Fuzz", **account})
    if status != 201:
        raise RuntimeError(f"make fuzz could not sign up its user: {status} {body}")
    status, body = call("POST", "/api/login", account)
    if status != 200:
        raise RuntimeError(f"make fuzz could not log in: {status} {body}")
    return body["access_token"]


def valid_token() -> str:
    token = current["token"]
    if not token or call("GET", "/api/me", token=token)[0] != 200:
        current["token"] = sign_up_and_log_in()
    return current["token"]


if os.environ.get("FUZZ_LOGIN"):

    @schemathesis.auth(refresh_interval=None)
    class FuzzUser:
        """A user of the fuzzer's own, checked before every case."""

        def get(self, case, context):
            return valid_token()

        def set(self, case, data, context):
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schemathesis.hook
def after_call(context, case, response):
    operation = case.operation.label  # "GET /api/me": a probe with another method counts for it
    entry = COUNTS.setdefault(operation, {"cases": 0, "with_token": 0})
    entry["cases"] += 1
    sent = response.request.headers.get("Authorization", "")
    if current["token"] and sent == f"Bearer {current['token']}":
        entry["with_token"] += 1


@atexit.register
def write_counts() -> None:
    if os.environ.get("FUZZ_COUNTS"):
        with open(os.environ["FUZZ_COUNTS"], "w") as f:
            json.dump(COUNTS, f)
