"""Twilio's official Python helper library drives the conference API of a running teleapi-local,
unchanged but for where its HTTP client sends requests, and the test asserts on the library's own
objects: a warm transfer (a customer and an agent in a room; the agent adds a second agent and
coaches it; hold, mute, removal, the end of the room) and a refused change.

Usage: twilio_conferences.py TELEAPI_LOCAL_BINARY
Everything on loopback: teleapi-local with its simulated media worker, and a small application
serving the RCML the calls run.
"""

import http.server
import re
import sys
import threading
import urllib.parse
import urllib.request

from twilio.base.exceptions import TwilioRestException

import local
from local import eventually


class App(http.server.BaseHTTPRequestHandler):
    """The application: RCML that puts each caller in the room `support`, with a label."""

    heard = []

    def rcml(self):
        self.heard.append(self.path)
        label = urllib.parse.urlparse(self.path).path.strip("/")
        body = (
            f'<Response><Dial><Conference participantLabel="{label}">support</Conference></Dial>'
            "<Say>Thank you for calling</Say><Hangup/></Response>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = rcml

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.rcml()

    def log_message(self, *args):
        pass


def main():
    app = http.server.ThreadingHTTPServer(("127.0.0.1", 0), App)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    app_url = f"http://127.0.0.1:{app.server_address[1]}"
    try:
        with local.running(sys.argv[1], "--speed", "0.02", "--ring-ms", "100") as base:
            warm_transfer(local.client(base), base, app_url)
        print("twilio-python drove the conference API: ok")
    finally:
        app.shutdown()


def warm_transfer(client, base, app_url):
    # The customer calls in (a simulated inbound call: teleapi-local's dev route).
    form = urllib.parse.urlencode(
        {"From": "+15551230001", "To": "+15551230002", "Url": f"{app_url}/customer"}
    ).encode()
    with urllib.request.urlopen(f"{base}/dev/IncomingCalls", data=form) as answer:
        customer = re.search(r'"sid":"(CA[0-9a-f]{32})"', answer.read().decode()).group(1)
    agent = client.calls.create(from_="+15551230001", to="client:agent", url=f"{app_url}/agent")
    assert agent.sid.startswith("CA") and agent.status == "queued", agent.status

    def room():
        rooms = client.conferences.list(friendly_name="support", status="in-progress")
        if rooms and len(rooms[0].participants.list()) == 2:
            return rooms[0]
        return None

    conference = eventually("customer and agent in the room", room)
    assert conference.sid.startswith("CF") and conference.friendly_name == "support"
    assert conference.status == "in-progress"
    assert conference.date_created is not None, "an RFC 2822 date the library parses"
    people = {p.call_sid: p for p in conference.participants.list()}
    assert set(people) == {customer, agent.sid}, people
    assert people[customer].label == "customer" and people[customer].muted is False

    participants = client.conferences(conference.sid).participants

    # On hold, and back.
    held = participants(customer).update(hold=True, hold_url=f"{app_url}/music", hold_method="GET")
    assert held.hold is True and held.call_sid == customer
    eventually("the hold to be applied", lambda: participants(customer).fetch().hold)
    participants(customer).update(hold=False)
    eventually("the customer back", lambda: participants(customer).fetch().hold is False)

    # The agent adds a second agent, and coaches it.
    second = participants.create(from_="+15551230001", to="client:agent2", label="agent-2")
    assert second.status == "queued" and second.label == "agent-2", second.status
    assert second.call_sid.startswith("CA")
    eventually("the second agent to join", lambda: len(participants.list()) == 3)
    by_label = participants("agent-2").fetch()
    assert by_label.call_sid == second.call_sid and by_label.status == "connected"
    coaching = participants(agent.sid).update(coaching=True, call_sid_to_coach=second.call_sid)
    assert coaching.coaching is True and coaching.call_sid_to_coach == second.call_sid
    eventually("the coaching to be applied", lambda: participants(agent.sid).fetch().coaching)

    # Muted, listed as muted, unmuted.
    muted = participants(agent.sid).update(muted=True)
    assert muted.muted is True
    eventually("the mute to be applied", lambda: [p.call_sid for p in participants.list(muted=True)] == [agent.sid])
    participants(agent.sid).update(muted=False)

    # The first agent leaves the room, removed: its call ends.
    assert participants(agent.sid).delete() is True
    eventually("the agent's call to end", lambda: client.calls(agent.sid).fetch().status == "completed")

    # The room ends; its intents are all there.
    ended = client.conferences(conference.sid).update(status="completed")
    assert ended.sid == conference.sid
    eventually("the room to end", lambda: client.conferences(conference.sid).fetch().status == "completed")
    assert client.conferences(conference.sid).fetch().reason_conference_ended == "conference-ended-via-api"
    eventually("the customer to go on and hang up", lambda: client.calls(customer).fetch().status == "completed")

    # A change of a room that has ended is refused, as Twilio's exception.
    try:
        participants(customer).update(muted=True)
        sys.exit("a change of an ended conference was accepted")
    except TwilioRestException as refused:
        assert refused.status == 409 and refused.code == 21220, (refused.status, refused.code)


if __name__ == "__main__":
    main()
