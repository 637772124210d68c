"""Twilio's official Python helper library drives the recordings of a live call on a running
teleapi-local (unchanged but for where its HTTP client sends requests): start a dual-channel
recording, pause it skipping the pause, resume it, stop it, fetch it and its WAV (read with
Python's own `wave`), list it, delete it; the RecordingStatusCallbacks the application receives;
and the refusals, as the library's exceptions.

Usage: twilio_recordings.py TELEAPI_LOCAL_BINARY
"""

import base64
import http.server
import io
import sys
import threading
import time
import urllib.parse
import urllib.request
import wave

from twilio.base.exceptions import TwilioRestException

import local
from local import SID, TOKEN, eventually


class App(http.server.BaseHTTPRequestHandler):
    """The application: RCML that keeps the call on hold, and a RecordingStatusCallback
    endpoint."""

    callbacks = []

    def do_GET(self):
        self.answer(b'<Response><Play loop="0">hold.mp3</Play></Response>')

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        if self.path.startswith("/recordings"):
            self.callbacks.append(dict(urllib.parse.parse_qsl(body)))
            self.answer(b"")
        else:
            self.do_GET()

    def answer(self, body):
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def refused(action, status, code):
    try:
        action()
    except TwilioRestException as error:
        assert (error.status, error.code) == (status, code), (error.status, error.code, error.msg)
        return
    sys.exit(f"expected {status}/{code}, the request was accepted")


def wav(url):
    """The channels and seconds of the WAV at `url`, fetched with the account's credentials."""
    request = urllib.request.Request(url)
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode())
    with urllib.request.urlopen(request) as answer:
        assert answer.headers["Content-Type"] == "audio/x-wav", answer.headers["Content-Type"]
        with wave.open(io.BytesIO(answer.read())) as media:
            assert media.getframerate() == 8000 and media.getsampwidth() == 2
            return media.getnchannels(), media.getnframes() / 8000


def record_a_call(client, app_url):
    call = client.calls.create(from_="+15551230001", to="client:bob", url=f"{app_url}/hold", method="GET")
    recordings = client.calls(call.sid).recordings
    refused(lambda: recordings.create(), 409, 21220)
    eventually("the call to be answered", lambda: client.calls(call.sid).fetch().status == "in-progress")

    started = recordings.create(
        recording_channels="dual",
        recording_status_callback=f"{app_url}/recordings",
        recording_status_callback_event=["in-progress", "completed"],
    )
    began = time.monotonic()
    assert started.sid.startswith("RE") and len(started.sid) == 34, started.sid
    assert (started.status, started.channels, started.source) == ("in-progress", 2, "StartCallRecordingAPI")
    assert started.call_sid == call.sid and started.start_time is not None
    refused(lambda: recordings.create(), 409, 21220)

    time.sleep(1.0)
    paused = recordings(started.sid).update(status="paused", pause_behavior="skip")
    audible = time.monotonic() - began
    assert paused.status == "paused", paused.status
    time.sleep(0.6)
    resumed = recordings("Twilio.CURRENT").update(status="in-progress")
    resumed_at = time.monotonic()
    assert resumed.status == "in-progress" and resumed.sid == started.sid
    time.sleep(1.0)
    stopped = recordings(started.sid).update(status="stopped")
    audible += time.monotonic() - resumed_at
    assert stopped.status == "stopped", stopped.status
    refused(lambda: recordings(started.sid).update(status="paused"), 409, 21220)

    done = eventually("the recording to complete", lambda: (lambda r: r if r.status == "completed" else None)(client.recordings(started.sid).fetch()))
    channels, seconds = wav(done.media_url + ".wav")
    assert channels == 2, channels
    assert abs(seconds - audible) < 0.4, (seconds, audible)
    assert int(done.duration) == round(seconds), (done.duration, seconds)
    assert [r.sid for r in client.recordings.list(call_sid=call.sid)] == [started.sid]
    assert [r.sid for r in recordings.list()] == [started.sid]

    heard = eventually("both callbacks", lambda: App.callbacks if len(App.callbacks) >= 2 else None)
    assert [c["RecordingStatus"] for c in heard] == ["in-progress", "completed"], heard
    assert heard[1]["RecordingSid"] == started.sid and heard[1]["RecordingUrl"] == done.media_url

    # A completed recording may be deleted, and is gone.
    client.calls(call.sid).update(status="completed")
    assert client.recordings(started.sid).delete() is True
    refused(lambda: client.recordings(started.sid).fetch(), 404, 20404)


def main():
    app = http.server.ThreadingHTTPServer(("127.0.0.1", 0), App)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    app_url = f"http://127.0.0.1:{app.server_address[1]}"
    try:
        with local.running(sys.argv[1], "--speed", "0.02", "--ring-ms", "100") as base:
            record_a_call(local.client(base), app_url)
        print("twilio-python drove the recordings API: ok")
    finally:
        app.shutdown()


if __name__ == "__main__":
    main()
