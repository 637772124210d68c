"""What the Python tests share: a teleapi-local of their own on loopback, with the dev account's
credentials, and Twilio's helper library pointed at it.

    with local.running(binary, "--speed", "0.02") as base:
        client = local.client(base)
"""

import contextlib
import os
import re
import subprocess
import sys
import time

from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

SID = "AC0123456789abcdef0123456789abcdef"
TOKEN = "fedcba9876543210fedcba9876543210"


@contextlib.contextmanager
def running(binary, *args, env=None):
    """Starts teleapi-local on a free port; yields its base URL; stops it however the block
    ends."""
    env = dict(env or os.environ, TELEAPI_DEV_ACCOUNT_SID=SID, TELEAPI_DEV_AUTH_TOKEN=TOKEN, RUST_LOG="warn")
    process = subprocess.Popen(
        [binary, "--listen", "127.0.0.1:0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    try:
        base = None
        for line in process.stdout:
            match = re.search(r"listening on (http://\S+)", line)
            if match:
                base = match.group(1)
                break
        if base is None:
            sys.exit("teleapi-local did not start")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


class TeleapiHttpClient(TwilioHttpClient):
    """Sends what the library addresses to api.twilio.com/2010-04-01 to teleapi-local's
    /call/2012-04-24 (and the absolute page URIs it builds from next_page_uri to the same host)."""

    def __init__(self, base):
        super().__init__()
        self.base = base

    def request(self, method, url, *args, **kwargs):
        path = re.sub(r"^https://api\.twilio\.com", "", url)
        path = re.sub(r"^/2010-04-01/", "/call/2012-04-24/", path)
        return super().request(method, self.base + path, *args, **kwargs)


def client(base):
    """Twilio's client, unchanged but for where its HTTP client sends requests."""
    return Client(SID, TOKEN, http_client=TeleapiHttpClient(base))


def eventually(what, check, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.05)
