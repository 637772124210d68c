"""Serve moto (DynamoDB and SQS emulation) on 127.0.0.1 for the test suite.

Usage: moto_server.py [PORT]   (default 0: the OS picks a free port)

Prints `port=N` once listening, then serves until its standard input closes, so a test process
that holds the pipe takes the server down with it however it ends.

DynamoDB requests are served one at a time. moto runs TransactWriteItems by snapshotting every
table and restoring the snapshot when a condition fails; two concurrent requests can therefore undo
each other's committed writes, which DynamoDB never does. Serialising them gives the linearisable
store our concurrency tests are about. SQS requests stay concurrent: a long poll must not block the
send that ends it.

Faults on request, for the retry tests: `POST /_teleapi/throttle` with a JSON body
`{"marker": "...", "count": N}` makes the next N DynamoDB requests whose body contains the marker
(a table name of the test's own) fail with ThrottlingException, as DynamoDB does when a table is
over its capacity; the answer says how many were throttled so far for that marker.
"""

import io
import json
import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

moto_app = DomainDispatcherApplication(create_backend_app)
dynamodb_lock = threading.Lock()
throttles = {}  # marker -> [still to throttle, throttled so far]
THROTTLED = json.dumps(
    {"__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException", "message": "Rate exceeded"}
).encode()


def control(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    order = json.loads(environ["wsgi.input"].read(length) or b"{}")
    with dynamodb_lock:
        entry = throttles.setdefault(order["marker"], [0, 0])
        entry[0] = int(order.get("count", 0))
        answer = json.dumps({"throttled": entry[1]}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [answer]


def app(environ, start_response):
    if environ.get("PATH_INFO") == "/_teleapi/throttle":
        return control(environ, start_response)
    if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB"):
        return moto_app(environ, start_response)
    length = int(environ.get("CONTENT_LENGTH") or 0)
    request = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(request)
    with dynamodb_lock:
        for marker, entry in throttles.items():
            if entry[0] > 0 and marker.encode() in request:
                entry[0] -= 1
                entry[1] += 1
                start_response(
                    "400 Bad Request", [("Content-Type", "application/x-amz-json-1.0")]
                )
                return [THROTTLED]
        result = moto_app(environ, start_response)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
    return [body]


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)
    print(f"port={server.server_port}", flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()  # returns at EOF: our parent is gone or done with us
    server.shutdown()


if __name__ == "__main__":
    main()
