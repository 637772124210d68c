"""Contract fuzzing: schemathesis generates requests from infra/openapi.yaml against a running
teleapi-local and checks that no answer is a 5xx and that every answer (status, content type,
headers, JSON body) is one the document describes.

Usage: fuzz_api.py TELEAPI_LOCAL_BINARY
Bounded: a fixed seed, a fixed number of examples per operation, and a time budget.
"""

import os
import re
import subprocess
import sys
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SID = "AC0123456789abcdef0123456789abcdef"
TOKEN = "fedcba9876543210fedcba9876543210"


def main():
    env = dict(os.environ, TELEAPI_DEV_ACCOUNT_SID=SID, TELEAPI_DEV_AUTH_TOKEN=TOKEN, RUST_LOG="warn")
    local = subprocess.Popen(
        # A rate limit the fuzzer does not reach, so that its requests reach the operations.
        [sys.argv[1], "--listen", "127.0.0.1:0", "--rate-limit", "10000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    try:
        base = None
        for line in local.stdout:
            match = re.search(r"listening on (http://\S+)", line)
            if match:
                base = match.group(1)
                break
        if base is None:
            sys.exit("teleapi-local did not start")
        # A call of the dev account that no worker owns: modifications are recorded, not run.
        form = urllib.parse.urlencode(
            {"From": "+15551230001", "To": "+15551230002", "Url": "https://app.example.com/rcml", "Status": "in-progress"}
        ).encode()
        with urllib.request.urlopen(f"{base}/dev/IncomingCalls", data=form) as answer:
            call = re.search(r'"sid":"(CA[0-9a-f]{32})"', answer.read().decode()).group(1)
        env["FUZZ_CALL_SID"] = call
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
            "--max-time", "120",
            "--report", "junit",
            "--report-dir", os.environ.get("FUZZ_REPORT_DIR", "/tmp/teleapi-fuzz"),
        ]
        # Schemathesis keeps a cache in its working directory: not in the workspace.
        workdir = os.environ.get("FUZZ_REPORT_DIR", "/tmp/teleapi-fuzz")
        os.makedirs(workdir, exist_ok=True)
        sys.exit(subprocess.call(command, env=env, cwd=workdir))
    finally:
        local.terminate()
        local.wait(timeout=10)


if __name__ == "__main__":
    main()
