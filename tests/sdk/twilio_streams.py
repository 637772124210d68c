"""Twilio's official Python helper library drives the media streams of a live call on a running
teleapi-local (unchanged but for where its HTTP client sends requests), and a WebSocket server
written with the `websockets` library, as a Python voice bot would be, checks what it receives:
`connected`, `start` with the call's sids and the custom parameters, `media` of 20 ms each,
`stop`.

Usage: twilio_streams.py TELEAPI_LOCAL_BINARY
"""

import base64
import json
import sys
import threading
import time

from twilio.base.exceptions import TwilioRestException
from websockets.sync.server import serve

import local
from local import SID, eventually


class Bot:
    """A Media Streams server: records every message of every connection."""

    def __init__(self):
        self.connections = []
        self.server = serve(self.handle, "127.0.0.1", 0)
        self.url = f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}/bot"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def handle(self, socket):
        messages = []
        self.connections.append(messages)
        for frame in socket:
            messages.append((time.monotonic(), json.loads(frame)))


def stream_a_call(client, bot):
    call = client.calls.create(from_="+15551230001", to="client:bob", twiml='<Response><Play loop="0">hold.mp3</Play></Response>')
    eventually("the call to be answered", lambda: client.calls(call.sid).fetch().status == "in-progress")
    stream = client.calls(call.sid).streams.create(
        url=bot.url, name="assist", track="inbound_track", parameter1_name="customer", parameter1_value="42"
    )
    assert stream.sid.startswith("MZ") and len(stream.sid) == 34, stream.sid
    assert (stream.status, stream.name, stream.call_sid) == ("in-progress", "assist", call.sid)
    try:
        client.calls(call.sid).streams.create(url="http://127.0.0.1/not-a-websocket")
        sys.exit("an http:// stream URL was accepted")
    except TwilioRestException as refused:
        assert refused.status == 400, refused.status

    messages = eventually("half a second of media", lambda: bot.connections and sum(1 for _, m in bot.connections[0] if m["event"] == "media") >= 25 and bot.connections[0])
    stopped = client.calls(call.sid).streams(stream.sid).update(status="stopped")
    assert stopped.status == "stopped" and stopped.sid == stream.sid
    eventually("the stop message", lambda: messages[-1][1]["event"] == "stop")

    events = [m["event"] for _, m in messages]
    assert events[0] == "connected" and events[1] == "start" and events[-1] == "stop", events[:3]
    start = messages[1][1]["start"]
    assert (start["callSid"], start["streamSid"], start["accountSid"]) == (call.sid, stream.sid, SID), start
    assert start["customParameters"] == {"customer": "42"} and start["tracks"] == ["inbound"], start
    assert start["mediaFormat"] == {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
    media = [m for _, m in messages if m["event"] == "media"]
    assert [m["media"]["chunk"] for m in media] == [str(n + 1) for n in range(len(media))]
    # 20 ms of audio each, by the stream's clock. (Their pace in real time is measured by
    # `tests/bench media`, not asserted here: this thread's reading of them is at the mercy of
    # the machine's scheduling, and once read 25 frames at once after a pause.)
    assert [m["media"]["timestamp"] for m in media] == [str(20 * n) for n in range(len(media))]
    assert all(len(base64.b64decode(m["media"]["payload"])) == 160 for m in media)
    client.calls(call.sid).update(status="completed")


def main():
    bot = Bot()
    try:
        with local.running(sys.argv[1], "--speed", "0.02", "--ring-ms", "100") as base:
            stream_a_call(local.client(base), bot)
        print("twilio-python drove the streams API: ok")
    finally:
        bot.server.shutdown()


if __name__ == "__main__":
    main()
