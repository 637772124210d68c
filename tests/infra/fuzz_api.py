"""Contract fuzzing: schemathesis generates requests from infra/openapi.yaml against a running
teleapi-local and checks that no answer is a 5xx and that every answer (status, content type,
headers, JSON body) is one the document describes.

Usage: fuzz_api.py TELEAPI_LOCAL_BINARY
Bounded: a fixed seed, a fixed number of examples per operation, and a time budget.
"""

import base64
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "sdk"))
import local  # noqa: E402  (teleapi-local for Python tests)
from local import SID, TOKEN  # noqa: E402

# A NotificationSid no call has: what GetNotification is fuzzed with when the call has none.
UNKNOWN_NOTIFICATION = "NO" + "0" * 32


def api(base, path):
    """The dev account's GET of `path` (under its account); its JSON answer, or None when it is
    refused."""
    request = urllib.request.Request(
        f"{base}/call/2012-04-24/Accounts/{SID}/{path}",
        headers={"Authorization": "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()},
    )
    try:
        with urllib.request.urlopen(request) as answer:
            return json.load(answer)
    except urllib.error.HTTPError:
        return None


def notification_of(base, call):
    """A notification of the call, so that GetNotification is fuzzed on one that exists (its
    200 held to the schema): a media worker's `call.notification` for the call leaves one
    (docs/messages.md). Failing that, a sid the call does not have, so that the route is still
    fuzzed (its 404)."""
    event = {
        "version": 1,
        "type": "call.notification",
        "call_sid": call,
        "timestamp": int(time.time() * 1000),
        "account_sid": SID,
        "level": "warning",
        "error_code": 12200,
        "message": "Schema validation warning: <Say> has an unknown attribute",
        "url": "https://app.example.com/rcml",
        "method": "POST",
    }
    try:
        urllib.request.urlopen(f"{base}/dev/Events", data=json.dumps(event).encode()).close()
    except urllib.error.HTTPError:
        return UNKNOWN_NOTIFICATION
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        listed = api(base, f"Calls/{call}/Notifications.json") or {}
        if listed.get("notifications"):
            return listed["notifications"][0]["sid"]
        time.sleep(0.1)
    return UNKNOWN_NOTIFICATION


def main():
    # schemathesis.toml reads the dev account from the environment.
    env = dict(os.environ, TELEAPI_DEV_ACCOUNT_SID=SID, TELEAPI_DEV_AUTH_TOKEN=TOKEN)
    # A rate limit the fuzzer does not reach, so that its requests reach the operations.
    with local.running(sys.argv[1], "--rate-limit", "10000") as base:
        # A call of the dev account that no worker owns: modifications are recorded, not run.
        form = urllib.parse.urlencode(
            {"From": "+15551230001", "To": "+15551230002", "Url": "https://app.example.com/rcml", "Status": "in-progress"}
        ).encode()
        with urllib.request.urlopen(f"{base}/dev/IncomingCalls", data=form) as answer:
            call = re.search(r'"sid":"(CA[0-9a-f]{32})"', answer.read().decode()).group(1)
        env["FUZZ_CALL_SID"] = call
        env["FUZZ_NOTIFICATION_SID"] = notification_of(base, call)
        checks = ",".join(
            [
                "not_a_server_error",
                "status_code_conformance",
                "content_type_conformance",
                "response_headers_conformance",
                "response_schema_conformance",
            ]
        )
        st = os.path.join(os.path.dirname(sys.executable), "st")
        command = [
            st, "--config-file", os.path.join(ROOT, "tests/infra/schemathesis.toml"),
            "run", os.path.join(ROOT, "infra/openapi.yaml"),
            "--url", base,
            "--auth", f"{SID}:{TOKEN}",
            "--checks", checks,
            "--phases", "coverage,fuzzing",
            "--max-examples", "15",
            "--seed", "20261124",
            "--max-time", "60",
            "--report", "junit",
            "--report-dir", os.environ.get("FUZZ_REPORT_DIR", "/tmp/teleapi-fuzz"),
        ]
        # Schemathesis keeps a cache in its working directory: not in the workspace.
        workdir = os.environ.get("FUZZ_REPORT_DIR", "/tmp/teleapi-fuzz")
        os.makedirs(workdir, exist_ok=True)
        status = subprocess.call(command, env=env, cwd=workdir)
    sys.exit(status)


if __name__ == "__main__":
    main()
