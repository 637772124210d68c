"""Twilio's official Python helper library drives issue 27's additions on a running
teleapi-local, unchanged but for where its HTTP client sends requests: calls created with
answering-machine detection (synchronous, and asynchronous with its callback), a `<Dial>` whose
action hears how it ended, participants added by a conference's friendly name, and call queues
(made, listed, their members listed and the front one dequeued).

Usage: twilio_verbs.py TELEAPI_LOCAL_BINARY
Everything on loopback: teleapi-local with its simulated media worker (whose far ends talk as
their number says: `machine` greets for 4 s), and a small application that serves RCML and
records what it is sent.
"""

import http.server
import sys
import threading
import urllib.parse

import local
from local import eventually

RCML = {
    "/hangup": "<Response><Hangup/></Response>",
    "/held": '<Response><Pause length="60"/></Response>',
    "/wait": '<Response><Play loop="0">music.mp3</Play></Response>',
    "/enqueue": '<Response><Enqueue waitUrl="/held">support</Enqueue></Response>',
}


class App(http.server.BaseHTTPRequestHandler):
    """Serves RCML by path, and keeps every request's parameters."""

    heard = []

    def answer(self, params):
        path = urllib.parse.urlparse(self.path).path
        self.heard.append((path, params))
        body = RCML.get(path, "<Response/>").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        query = urllib.parse.urlparse(self.path).query
        self.answer(dict(urllib.parse.parse_qsl(query)))

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        self.answer(dict(urllib.parse.parse_qsl(body)))

    def log_message(self, *args):
        pass


def received(path, call_sid=None):
    """The first request to `path` (of `call_sid`, if given), once there is one."""
    for at, params in App.heard:
        if at == path and (call_sid is None or params.get("CallSid") == call_sid):
            return params
    return None


def main():
    app = http.server.ThreadingHTTPServer(("127.0.0.1", 0), App)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    app_url = f"http://127.0.0.1:{app.server_address[1]}"
    try:
        with local.running(sys.argv[1], "--speed", "0.02", "--ring-ms", "100") as base:
            client = local.client(base)
            machine_detection(client, app_url)
            dial_outcome(client, app_url)
            participants_by_name(client, app_url)
            queues(client, app_url)
        print(
            "twilio-python drove machine detection, <Dial action>, participants by name "
            "and queues: ok"
        )
    finally:
        app.shutdown()


def machine_detection(client, app_url):
    machine = client.calls.create(
        from_="+15551230001", to="client:machine-max", url=f"{app_url}/hangup",
        machine_detection="Enable",
    )
    fetched = eventually("the RCML fetched with AnsweredBy", lambda: received("/hangup", machine.sid))
    assert fetched["AnsweredBy"] == "machine_start", fetched
    answered = eventually(
        "answered_by on the call",
        lambda: (call := client.calls(machine.sid).fetch()).answered_by and call,
    )
    assert answered.answered_by == "machine_start", answered.answered_by

    held = client.calls.create(
        from_="+15551230001", to="client:machine-mia", url=f"{app_url}/held",
        machine_detection="DetectMessageEnd", async_amd="true",
        async_amd_status_callback=f"{app_url}/amd-status",
    )
    told = eventually("the asynchronous outcome", lambda: received("/amd-status", held.sid))
    assert told["AnsweredBy"] == "machine_end_silence", told
    assert int(told["MachineDetectionDuration"]) > 0, told
    assert "AnsweredBy" not in received("/held", held.sid), "asynchronous: fetched at once"
    client.calls(held.sid).update(status="completed")


def dial_outcome(client, app_url):
    twiml = (
        f'<Response><Dial action="{app_url}/after" timeout="5">'
        "<Number>+1555busy</Number></Dial></Response>"
    )
    call = client.calls.create(from_="+15551230001", to="+15557654321", twiml=twiml)
    after = eventually("the dial's action", lambda: received("/after", call.sid))
    assert after["DialCallStatus"] == "busy", after
    assert after["DialBridged"] == "false", after


def participants_by_name(client, app_url):
    first = client.conferences("MyRoom").participants.create(
        from_="+15551230001", to="client:ann", caller_id="+15550001111", early_media=False,
        start_conference_on_enter=False, wait_url=f"{app_url}/wait", wait_method="GET",
        conference_status_callback=f"{app_url}/room", conference_status_callback_event=["join"],
    )
    assert first.conference_sid.startswith("CF"), first.conference_sid
    room = eventually(
        "the room MyRoom",
        lambda: (
            (found := client.conferences.list(friendly_name="MyRoom", limit=1))
            and found[0].sid == first.conference_sid
            and found[0]
        ),
    )
    assert room.friendly_name == "MyRoom"
    assert client.calls(first.call_sid).fetch()._from == "+15550001111"
    second = client.conferences("MyRoom").participants.create(from_="+15551230001", to="client:bob")
    assert second.conference_sid == first.conference_sid, (second.conference_sid, first.conference_sid)
    eventually("the room told of a join", lambda: received("/room"))
    client.conferences(first.conference_sid).update(status="completed")


def queues(client, app_url):
    made = client.queues.create(friendly_name="support", max_size=10)
    assert made.sid.startswith("QU") and made.max_size == 10, (made.sid, made.max_size)
    listed = client.queues.list()
    assert [q.sid for q in listed] == [made.sid], [q.sid for q in listed]
    caller = client.calls.create(from_="+15551230001", to="+15557654321", url=f"{app_url}/enqueue")
    member = eventually(
        "the caller in the queue",
        lambda: (found := client.queues(made.sid).members.list()) and found[0],
    )
    assert (member.call_sid, member.position) == (caller.sid, 1), (member.call_sid, member.position)
    assert client.queues(made.sid).fetch().current_size == 1
    dequeued = client.queues(made.sid).members("Front").update(url=f"{app_url}/hangup", method="POST")
    assert dequeued.call_sid == caller.sid, dequeued.call_sid
    eventually("the dequeued caller runs the Url", lambda: received("/hangup", caller.sid))
    eventually("the queue empty", lambda: client.queues(made.sid).fetch().current_size == 0)
    assert client.queues(made.sid).delete()


if __name__ == "__main__":
    main()
