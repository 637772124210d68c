"""Twilio's official Python helper library reads what happened to calls on a running
teleapi-local (unchanged but for where its HTTP client sends requests): a call's request log
(`calls(sid).events`), its notifications and one of them (`calls(sid).notifications`), and the
account's notifications filtered by level and date (`notifications`).

The application fails the call's RCML and answers its FallbackUrl: the log holds the failed
fetch and the fallback's request, and a warning (11200); a change asked of a call that has
ended is refused, as the library's exception, and noted as an error (21220).

Usage: twilio_call_log.py TELEAPI_LOCAL_BINARY
"""

import datetime
import http.server
import sys
import threading

from twilio.base.exceptions import TwilioRestException

import local
from local import eventually


class App(http.server.BaseHTTPRequestHandler):
    """The application: its RCML fails (500); its fallback keeps the call on hold."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.startswith("/broken"):
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b'<Response><Play loop="0">hold.mp3</Play></Response>'
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main(binary):
    app = http.server.ThreadingHTTPServer(("127.0.0.1", 0), App)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    app_url = f"http://127.0.0.1:{app.server_address[1]}"
    with local.running(binary, "--speed", "0.02", "--ring-ms", "100") as base:
        client = local.client(base)
        call = client.calls.create(
            to="client:bob",
            from_="+15551230001",
            url=f"{app_url}/broken",
            fallback_url=f"{app_url}/fallback",
        )
        events = eventually(
            "the fetch and the fallback in the call's log",
            lambda: (lambda e: e if len(e) >= 2 else None)(client.calls(call.sid).events.list()),
        )
        fallback, fetch = events[0], events[1]
        assert fetch.request["kind"] == "rcml", fetch.request
        assert fetch.request["url"] == f"{app_url}/broken", fetch.request
        assert fetch.response["response_code"] == 500, fetch.response
        assert fallback.request["kind"] == "fallback", fallback.request
        assert fallback.request["parameters"]["ErrorCode"] == "11200", fallback.request
        assert fallback.response["response_code"] == 200, fallback.response

        warning = eventually(
            "the rescued fetch's warning",
            lambda: client.calls(call.sid).notifications.list(),
        )[0]
        assert (warning.error_code, warning.log) == ("11200", "1"), (warning.error_code, warning.log)
        assert warning.request_url == f"{app_url}/broken", warning.request_url
        assert isinstance(warning.message_date, datetime.datetime), warning.message_date
        again = client.calls(call.sid).notifications(warning.sid).fetch()
        assert again.sid == warning.sid and again.message_text == warning.message_text

        client.calls(call.sid).update(status="completed")
        eventually("the call to end", lambda: client.calls(call.sid).fetch().status == "completed")
        try:
            client.calls(call.sid).update(url=f"{app_url}/fallback")
            sys.exit("a change of a call that has ended was accepted")
        except TwilioRestException as error:
            assert (error.status, error.code) == (409, 21220), (error.status, error.code)
        error = eventually(
            "the refusal's error",
            lambda: client.notifications.list(log=0),
        )[0]
        assert (error.error_code, error.call_sid) == ("21220", call.sid), (error.error_code, error.call_sid)

        today = datetime.datetime.now(datetime.timezone.utc).date()
        assert len(client.notifications.list(message_date=today)) == 2
        assert client.notifications.list(message_date_before=today - datetime.timedelta(days=1)) == []
        assert [n.sid for n in client.notifications.list(log=1)] == [warning.sid]
    app.shutdown()
    print("twilio_call_log: Twilio's library read a call's request log and notifications")


if __name__ == "__main__":
    main(sys.argv[1])
