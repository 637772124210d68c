"""Serve moto (DynamoDB and SQS emulation) on 127.0.0.1 for the test suite.

Usage: moto_server.py [PORT]   (default 0: the OS picks a free port)

Prints `port=N` once listening, then serves until its standard input closes, so a test process
that holds the pipe takes the server down with it however it ends.

DynamoDB requests are served one at a time. moto runs TransactWriteItems by snapshotting every
table and restoring the snapshot when a condition fails; two concurrent requests can therefore undo
each other's committed writes, which DynamoDB never does. Serialising them gives the linearisable
store our concurrency tests are about. SQS requests stay concurrent: a long poll must not block the
send that ends it.
"""

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


def app(environ, start_response):
    if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB"):
        return moto_app(environ, start_response)
    with dynamodb_lock:
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
