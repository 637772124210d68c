"""The README, run as written.

Reads README.md's shell blocks and runs every command in them, in order, as a newcomer would:
in terminals of their own (the first runs the stack, the second takes the curl commands, the
third runs `cargo lambda watch`), each with its shell's variables kept from one command to the
next. Where the README shows what a command prints, the answer is checked against it: the same
fields and values (the sids and dates of this run aside), the same calls in the same states, the
same log lines. A README command this plan does not know fails the run, and so does one the plan
expects and the README no longer has: whoever changes the README's commands changes this too.

tests/run runs it in a network namespace of its own (`in_private_network`, tests/support/env.sh),
so the README's fixed ports (8080, 5000, 9000, 9009) are free whatever else runs on the machine,
and nothing it starts reaches the internet.

What differs from typing, and why:
- Each run makes its own sids: where the README shows a sid (`CAece4e85…`) and the answer
  shows another, later commands get the run's own (as a reader pastes theirs).
- The README's placeholders for a deployment's values (`<AccountsTableName output>`, `AC...`)
  get the values of what the commands before them made on the README's moto.
- A command the README says comes "a few seconds later" is repeated until its answer matches
  (reads only, at most 30 s), where a person would have waited before typing it.
- The stream example's "Media Streams server listening on ws://127.0.0.1:9000/media" is this
  script's, which records what it is sent; the deployer's AWS environment (for teleapi-admin)
  names the README's moto.

    .venv/bin/python tests/readme/readme.py     (inside in_private_network)
"""

import asyncio
import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SID = re.compile(r"\b([A-Z]{2})([0-9a-f]{32})\b")
DATE = re.compile(r"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000$")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# A server's first `cargo run` may compile for minutes on two cores; anything else is quick.
BUILD_SECONDS = 20 * 60
WAIT_SECONDS = 30
# baresip's control port, for the phone the README asks to call a number (not 5063: its own
# SIP over TLS listens on the port after 5062).
CTRL_PORT = 5070
COMMAND_SECONDS = 60
# API keys the deployer's AWS environment (moto) may have: sync-usage-plans fills the pool to it.
README_KEY_QUOTA = 8


class Failed(Exception):
    pass


def fail(message):
    raise Failed(message)


# The README's commands ------------------------------------------------------------------------


class Command:
    """One command of a shell block (continuation lines joined); the last of its block has the
    blocks the README shows after it (`shown`: output, log lines)."""

    def __init__(self, text, line, section, shown):
        self.text, self.line, self.section, self.shown = text, line, section, shown

    def __repr__(self):
        return f"README.md:{self.line} ({self.section}): {self.text}"


def readme_commands():
    """Every command of the README's `sh` blocks, with what the README shows after it: the blocks
    between its block and the next shell block or heading."""
    lines = README.read_text().splitlines()
    blocks, section, i = [], "", 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            section = line.lstrip("#").strip()
            blocks.append(("heading", i + 1, section, []))
        if line.startswith("```"):
            lang, start, body = line[3:].strip(), i + 2, []
            i += 1
            while not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            blocks.append((lang, start, section, body))
        i += 1
    commands = []
    for index, (lang, start, section, body) in enumerate(blocks):
        if lang != "sh":
            continue
        shown = []
        for later in blocks[index + 1 :]:
            if later[0] in ("sh", "heading"):
                break
            shown.append("\n".join(later[3]))
        ours, text, first = [], "", None
        for number, raw in enumerate(body, start):
            first = number if first is None else first
            text += raw
            if text.endswith("\\"):
                text = text[:-1] + " "
                continue
            if text.strip() and not text.strip().startswith("#"):
                ours.append(Command(re.sub(r"\s+", " ", text).strip(), first, section, []))
            text, first = "", None
        if ours:
            ours[-1].shown = shown
        commands += ours
    return commands


# Sids: the README's, and this run's ------------------------------------------------------------


class Sids:
    """The README's sids and this run's, as answers showed them side by side."""

    def __init__(self):
        self.ours = {}

    def learn(self, readme, actual):
        if SID.fullmatch(readme) is None or SID.fullmatch(actual) is None:
            fail(f"not a sid: {readme!r} against {actual!r}")
        if readme[:2] != actual[:2]:
            fail(f"{actual} is not a {readme[:2]} sid, as the README shows ({readme})")
        known = self.ours.get(readme)
        if known is None:
            if actual in self.ours.values() and readme != actual:
                fail(f"{actual} stands for two of the README's sids")
            self.ours[readme] = actual
        elif known != actual:
            fail(f"the README's {readme} was {known} in this run, and now {actual}")

    def ours_for(self, readme):
        return self.ours.get(readme, readme)

    def prefix(self, shown):
        """The README's whole sid that `CAece4e85…` abbreviates."""
        whole = [sid for sid in self.ours if sid.startswith(shown)]
        if len(whole) != 1:
            fail(f"{shown}… names no sid the README showed before")
        return whole[0]

    def apply(self, text):
        return SID.sub(lambda m: self.ours_for(m.group(0)), text)


# Comparing an answer with what the README shows -------------------------------------------------


def readme_json(shown):
    """The README's JSON, where `…` stands for fields left out."""
    text = "\n".join(line for line in shown.splitlines() if line.strip() not in ("…", "…,"))
    text = re.sub(r",\s*…", "", text)
    text = re.sub(r",(\s*[}\]])", r"\1", text)
    return json.loads(text)


def same_string(expected, actual, sids, where):
    if expected.endswith("…"):
        if not actual.startswith(sids.apply(expected[:-1])):
            fail(f"{where}: {actual!r} does not start as {expected!r}")
        return
    if DATE.match(expected):
        if not DATE.match(actual):
            fail(f"{where}: {actual!r} is not a date like {expected!r}")
        return
    shown, got = SID.split(expected), SID.split(actual)
    # split with two groups: [text, prefix, hex, text, …]
    if len(shown) != len(got):
        fail(f"{where}: {actual!r} is not {expected!r}")
    for i in range(0, len(shown), 3):
        if shown[i] != got[i]:
            fail(f"{where}: {actual!r} is not {expected!r}")
        if i + 2 < len(shown):
            sids.learn(shown[i + 1] + shown[i + 2], got[i + 1] + got[i + 2])


def same_shape(expected, actual, sids, where="answer"):
    """Every field the README shows is in the answer, with the value it shows (a sid or date of
    the same kind; `CA…` a value that starts so)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            fail(f"{where}: {actual!r} is not an object")
        for key, value in expected.items():
            if key not in actual:
                fail(f"{where}: no {key!r} in {json.dumps(actual)[:400]}")
            same_shape(value, actual[key], sids, f"{where}.{key}")
    elif isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) < len(expected):
            fail(f"{where}: {actual!r} has fewer items than {expected!r}")
        for i, value in enumerate(expected):
            same_shape(value, actual[i], sids, f"{where}[{i}]")
    elif isinstance(expected, str):
        if not isinstance(actual, str):
            fail(f"{where}: {actual!r} is not a string like {expected!r}")
        same_string(expected, actual, sids, where)
    elif expected != actual:
        fail(f"{where}: {actual!r}, the README shows {expected!r}")


CALL_LINE = re.compile(
    r"^(?P<sid>CA[0-9a-f]{32})\s+(?P<direction>\S+)\s+(?P<from>\S+) -> (?P<to>\S+)\s+"
    r"(?P<status>\S+)(?:\s+parent (?P<parent>CA[0-9a-f]+)…)?(?:\s+\(duration (?P<duration>\d+)\))?$"
)


def call_line(call):
    """A call of the list as the README shows it, one line each."""
    parent = f"  parent {call['parent_call_sid'][:10]}…" if call["parent_call_sid"] else ""
    duration = f"  (duration {call['duration']})" if call.get("duration") else ""
    return (
        f"{call['sid']}  {call['direction']:<13}  {call['from']} -> {call['to']:<14}"
        f"{call['status']:<11}{parent}{duration}"
    )


def same_calls(shown, answer, sids):
    """The list of calls, newest first, as the README's one line per call shows it: the same
    calls (direction, parties, status, parent) in the same order."""
    calls = json.loads(answer)["calls"]
    expected = [CALL_LINE.match(line) for line in shown.splitlines()]
    if None in expected:
        fail(f"the README's call list has a line this test cannot read:\n{shown}")
    rendered = "\n".join(call_line(c) for c in calls)
    if len(calls) != len(expected):
        fail(f"{len(calls)} calls, the README shows {len(expected)}:\n{rendered}")
    trial = Sids()
    trial.ours = dict(sids.ours)
    for line, call in zip(expected, calls):
        for field in ("direction", "from", "to", "status"):
            if call[field] != line[field]:
                fail(f"{field} {call[field]!r}, the README shows {line[field]!r}:\n{rendered}")
        trial.learn(line["sid"], call["sid"])
        parent = trial.ours_for(trial.prefix(line["parent"])) if line["parent"] else None
        if call["parent_call_sid"] != parent:
            fail(f"{call['sid']}'s parent is {call['parent_call_sid']}, not {parent}:\n{rendered}")
        if bool(line["duration"]) != bool(call.get("duration")):
            fail(f"{call['sid']}'s duration is {call.get('duration')!r}:\n{rendered}")
    sids.ours = trial.ours


def log_record(line):
    """A log line without its time, and its sids and request durations as the README's."""
    line = ANSI.sub("", line).strip()
    match = re.match(r"^\d{2}:\d{2}:\d{2}\.\d{3}\s+(.*)$", line)
    return re.sub(r"elapsed_ms=\d+", "elapsed_ms=…", match.group(1)) if match else None


def same_log_lines(shown, printed, sids):
    """Each log line the README shows, this run's sids for its own, was printed."""
    records = {log_record(line) for line in printed.splitlines()} - {None}
    for line in shown.splitlines():
        expected = log_record(line)
        if expected is None:
            fail(f"the README shows a log line without its time: {line!r}")
        if sids.apply(expected) not in records:
            fail(
                f"not printed: {line!r}\nprinted:\n"
                + "\n".join(sorted(r for r in records if "heartbeat" not in r))
            )


def same_banner(shown, printed, sids):
    """The lines the README shows before its `…` are what the program printed, in a row."""
    expected = [sids.apply(line) for line in shown.split("…")[0].rstrip("\n").splitlines()]
    got = [ANSI.sub("", line).rstrip() for line in printed.splitlines()]
    for start in range(len(got)):
        if got[start : start + len(expected)] == expected:
            return
    fail("the README's banner is not what teleapi-local printed:\n" + "\n".join(got[:40]))


# Terminals ---------------------------------------------------------------------------------------


class Terminal:
    """A shell of its own: its variables kept from one command to the next (as `set -a` keeps
    them, so that what a command assigns reaches the commands after it), and the servers it
    started, stopped with Ctrl-C."""

    def __init__(self, name, cwd, env):
        self.name, self.cwd, self.env = name, cwd, dict(env)
        self.servers = []
        # Every server it ever started: what a server's command left running in the background
        # (moto_server's `&`) outlives Ctrl-C, and is ended with the run.
        self.started = []

    def run(self, text, timeout):
        """Runs a command to its end: its output (stdout and stderr) and exit status."""
        with tempfile.NamedTemporaryFile() as saved:
            script = f"set -a\n{text}\nstatus=$?\nenv -0 > {saved.name}\nexit $status\n"
            try:
                done = subprocess.run(
                    ["bash", "-c", script],
                    cwd=self.cwd,
                    env=self.env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    timeout=timeout,
                )
            except subprocess.TimeoutExpired:
                fail(f"still running after {timeout} s")
            kept = Path(saved.name).read_bytes().decode()
        if kept:
            self.env = dict(pair.split("=", 1) for pair in kept.split("\0") if "=" in pair)
            self.env.pop("status", None)
        return done.stdout, done.returncode

    def serve(self, text):
        """Starts a command that runs until stopped, on a pseudo-terminal (what a person's
        terminal is: teleapi-local writes its log lines for a person there)."""
        server = Server(text, self.cwd, self.env)
        self.servers.append(server)
        self.started.append(server)
        return server

    def stop(self):
        """Ctrl-C: SIGINT to everything the terminal's servers started; each must end cleanly."""
        for server in self.servers:
            server.interrupt()
        problems = [server.wait_end() for server in self.servers]
        self.servers = []
        problems = [p for p in problems if p]
        if problems:
            fail(f"{self.name}: " + "; ".join(problems))

    def kill(self):
        for server in self.started:
            server.kill()


class Server:
    def __init__(self, text, cwd, env):
        self.text = text
        controller, worker = pty.openpty()
        self.process = subprocess.Popen(
            ["bash", "-c", text],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=worker,
            stderr=worker,
            start_new_session=True,
        )
        os.close(worker)
        self.output = bytearray()
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, args=(controller,), daemon=True)
        self.reader.start()

    def _read(self, fd):
        while True:
            try:
                ready, _, _ = select.select([fd], [], [], 0.5)
                if ready:
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        break
                    with self.lock:
                        self.output += chunk
            except OSError:
                break  # the other side closed
        os.close(fd)

    def printed(self):
        with self.lock:
            return self.output.decode(errors="replace").replace("\r\n", "\n").replace("\r", "\n")

    def wait_for(self, text, seconds=BUILD_SECONDS):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if text in ANSI.sub("", self.printed()):
                return
            if self.process.poll() is not None:
                fail(f"{self.text!r} ended ({self.process.returncode}):\n{self.printed()[-3000:]}")
            time.sleep(0.2)
        fail(f"{self.text!r} did not print {text!r} in {seconds} s:\n{self.printed()[-3000:]}")

    def interrupt(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)

    def wait_end(self):
        try:
            status = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
            return f"{self.text!r} did not stop on Ctrl-C"
        self.reader.join(timeout=5)
        if status not in (0, 130, -signal.SIGINT):
            return f"{self.text!r} ended with {status} on Ctrl-C:\n{self.printed()[-2000:]}"
        return None

    def kill(self):
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_port(port, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    fail(f"nothing listens on 127.0.0.1:{port} after {seconds} s")


# A Media Streams server on ws://127.0.0.1:9000/media, as the stream example asks for ----------


class StreamPeer:
    """Accepts Media Streams connections and records the events each message names."""

    def __init__(self, port):
        self.messages = []
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        threading.Thread(target=self._serve, args=(port, started), daemon=True).start()
        if not started.wait(10):
            fail("the Media Streams peer did not start")

    def _serve(self, port, started):
        import websockets

        async def handler(socket):
            async for message in socket:
                self.messages.append(json.loads(message))

        async def main():
            async with websockets.serve(handler, "127.0.0.1", port):
                started.set()
                await asyncio.Future()

        self.loop.run_until_complete(main())

    def events(self):
        return [m.get("event") for m in list(self.messages)]


# The plan: what to do with each command of the README, in the README's order --------------------


class Run:
    """Run `matches` in `terminal`; then `check(answer, context)`; with `until`, repeat (a read)
    until the check passes."""

    def __init__(self, matches, terminal="second", check=None, until=False, fill=None, slow=False, before=None):
        self.matches, self.terminal, self.check, self.until = matches, terminal, check, until
        self.fill = fill or {}
        # What the README asks of the reader before the command (a SIP phone answering).
        self.before = before
        # A command that may build (cargo) runs for minutes; anything else in seconds.
        self.timeout = BUILD_SECONDS if slow or re.search(r"cargo|teleapi-admin", matches) else COMMAND_SECONDS


class Serve(Run):
    """Start `matches` in `terminal` and wait until it prints `ready`."""

    def __init__(self, matches, terminal, ready, check=None, port=None, stop_first=None):
        super().__init__(matches, terminal, check)
        self.ready, self.port, self.stop_first = ready, port, stop_first


class Skip:
    def __init__(self, matches, why):
        self.matches, self.why = matches, why


def shown(command, index=0):
    if len(command.shown) <= index:
        fail(f"{command}: the README shows no output after it to check")
    return command.shown[index]


def listens_on_8080(_command, _printed, context):
    printed = ANSI.sub("", context.terminals["first"].servers[-1].printed())
    if "teleapi-local listening on http://127.0.0.1:8080 (in-memory" not in printed:
        fail(f"teleapi-local did not say it listens on 127.0.0.1:8080:\n{printed[-2000:]}")


def expect_json(command, answer, context):
    try:
        body = json.loads(answer)
    except json.JSONDecodeError:
        fail(f"not JSON: {answer[:500]!r}")
    same_shape(readme_json(shown(command)), body, context.sids)


def expect_calls(command, answer, context):
    same_calls(shown(command), answer, context.sids)


def expect_banner(command, _printed, context):
    same_banner(shown(command), context.terminals["first"].servers[-1].printed(), context.sids)


def expect_ok(command, answer, _context):
    """An answer of the API that is not an error (an error has a `code` and `more_info`)."""
    try:
        body = json.loads(answer)
    except json.JSONDecodeError:
        fail(f"not JSON: {answer[:500]!r}")
    if isinstance(body, dict) and "more_info" in body:
        fail(f"the API refused: {answer[:500]}")
    return body


def expect_sid_in(variable, prefix):
    def check(_command, _answer, context):
        value = context.terminals["second"].env.get(variable, "")
        if not re.fullmatch(prefix + "[0-9a-f]{32}", value):
            fail(f"${variable} is {value!r}, not a {prefix} sid")

    return check


def expect_field(field, value):
    def check(command, answer, context):
        body = expect_ok(command, answer, context)
        if body.get(field) != value:
            fail(f"{field} is {body.get(field)!r}, not {value!r}: {answer[:500]}")

    return check


def expect_sip_banner(_command, _printed, context):
    printed = ANSI.sub("", context.terminals["first"].servers[-1].printed())
    if "SIP/RTP worker: SIP on udp 127.0.0.1:5060, RTP on ports 30000-30999" not in printed:
        fail(f"teleapi-local did not say it runs the SIP/RTP worker:\n{printed[-2000:]}")


def expect_spoken(command, answer, context):
    """The call to the phone ended, having been answered: as the README shows."""
    expect_json(command, answer, context)
    body = json.loads(answer)
    if body.get("status") != "completed" or not body.get("start_time"):
        fail(f"the call is not over yet, or was never answered: {answer[:500]}")


class SipPhone:
    """The SIP phone the README asks for: Debian's baresip answering as sip:alice@127.0.0.1:5062
    by itself, with a second of silence as its microphone, in a folder of its own."""

    def __init__(self, workdir):
        import wave

        self.dir = Path(workdir) / "phone"
        self.dir.mkdir()
        with wave.open(str(self.dir / "silence.wav"), "wb") as microphone:
            microphone.setnchannels(1)
            microphone.setsampwidth(2)
            microphone.setframerate(8000)
            microphone.writeframes(b"\0\0" * 8000 * 120)
        (self.dir / "config").write_text(
            "sip_listen 127.0.0.1:5062\nnet_interface 127.0.0.1\n"
            f"audio_source aufile,{self.dir / 'silence.wav'}\naudio_player nullplay,none\n"
            "audio_alert nullplay,none\nrtp_ports 20000-20099\nmodule_path /usr/lib/baresip/modules\n"
            "module g711.so\nmodule aufile.so\nmodule_tmp account.so\nmodule_app menu.so\n"
            f"module_app ctrl_tcp.so\nctrl_tcp_listen 127.0.0.1:{CTRL_PORT}\nstatmode_default off\n"
        )
        (self.dir / "accounts").write_text(
            "<sip:alice@127.0.0.1:5062;transport=udp>;regint=0;answermode=auto\n"
        )
        self.log = open(self.dir / "baresip.log", "wb")
        self.process = subprocess.Popen(
            ["baresip", "-f", str(self.dir)], stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log
        )
        deadline = time.monotonic() + 10
        while b"baresip is ready" not in (self.dir / "baresip.log").read_bytes():
            if time.monotonic() > deadline or self.process.poll() is not None:
                fail(f"baresip did not start: {(self.dir / 'baresip.log').read_text()[-2000:]}")
            time.sleep(0.1)

    def dial(self, uri):
        """Calls `uri`, as the README asks the reader to (baresip's `ctrl_tcp`: a netstring of
        JSON)."""
        body = json.dumps({"command": "dial", "params": uri, "token": "readme"})
        with socket.create_connection(("127.0.0.1", CTRL_PORT), timeout=5) as control:
            control.sendall(f"{len(body)}:{body},".encode())
            control.recv(4096)

    def stop(self):
        # SIGTERM twice: the second one exits at once.
        for _ in range(2):
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    pass
        if self.process.poll() is None:
            self.process.kill()
        self.log.close()


def start_phone(context):
    if context.phone is None:
        context.phone = SipPhone(context.terminals["second"].cwd)


def phone_calls_the_number(context):
    context.phone.dial("sip:+15557650000@127.0.0.1:5060")


def expect_inbound_call(command, answer, context):
    """The phone's call to the number, over: as the README shows."""
    try:
        expect_json(command, answer, context)
        if json.loads(answer).get("status") != "completed":
            fail(f"the call to the number is not over: {answer[:500]}")
    except Failed as failed:
        fail(f"{failed}\nthe phone's log:\n{(context.phone.dir / 'baresip.log').read_text()[-3000:]}")


def expect_nothing(_command, answer, _context):
    if answer.strip():
        fail(f"expected no answer, got {answer[:500]!r}")


def expect_wav(_command, _answer, context):
    path = Path(context.terminals["second"].cwd) / "call.wav"
    if not path.exists():
        fail("no call.wav was written")
    try:
        with wave.open(str(path)) as media:
            channels, frames = media.getnchannels(), media.getnframes()
    except (wave.Error, EOFError) as err:
        fail(f"call.wav is not a WAV file ({err}): {path.read_bytes()[:200]!r}")
    if channels != 2 or frames == 0:
        fail(f"call.wav has {channels} channels and {frames} frames: dual was asked")


def expect_streamed(_command, _answer, context):
    """The bot was sent the stream: its start with the custom parameter, media, the two digits
    pressed, and its stop."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        events = context.peer.events()
        if "stop" in events:
            break
        time.sleep(0.2)
    messages = list(context.peer.messages)
    events = [m.get("event") for m in messages]
    starts = [m for m in messages if m.get("event") == "start"]
    digits = [m["dtmf"]["digit"] for m in messages if m.get("event") == "dtmf"]
    if not (events and events[0] == "connected" and starts and "media" in events and "stop" in events):
        fail(f"the bot was sent {sorted(set(events))}")
    if starts[0]["start"].get("customParameters") != {"customer": "42"}:
        fail(f"start: {starts[0]}")
    if digits != ["4", "2"]:
        fail(f"the bot was sent the digits {digits}, not 4 and 2")


def recording_completed(_command, answer, _context):
    body = json.loads(answer)
    if body.get("status") != "completed" or body.get("channels") != 2 or not body.get("duration"):
        fail(f"the recording is {body}")


def admin_printed(answer):
    """The account teleapi-admin printed (after what cargo said on standard error)."""
    try:
        return json.loads(answer[answer.index("{\n") :])
    except ValueError:
        fail(f"teleapi-admin printed no account: {answer[-1000:]!r}")


def expect_account(_command, answer, context):
    body = admin_printed(answer)
    if not re.fullmatch(r"AC[0-9a-f]{32}", body.get("sid") or "") or body.get("friendly_name") != "Acme":
        fail(f"teleapi-admin printed {body}")
    if body.get("usage_key") is not None:
        fail(f"an account of the default limit was given a key of its own, not the pool's: {body}")
    context.values.update({"AC...": body["sid"], "token": body["auth_token"]})


def expect_pool(_command, answer, _context):
    """The pool of keys made: the quota less a hundredth (no account has a key yet)."""
    body = admin_printed(answer)
    if body.get("pool_keys") != README_KEY_QUOTA - 1 or body.get("keys_given_to_the_pool") != 0:
        fail(f"sync-usage-plans printed {body}")


def expect_admin(check):
    def expect(_command, answer, context):
        body = admin_printed(answer)
        if not check(body, context.values):
            fail(f"teleapi-admin printed {body}")

    return expect


def expect_got_call(command, answer, context):
    body = expect_ok(command, answer, context)
    if body.get("sid") != context.terminals["second"].env.get("CA"):
        fail(f"get-call answered {answer[:500]}")


def expect_intent_and_log(command, answer, context):
    """The intent applied, as the README shows; and the log lines it shows next were printed by
    the first terminal's teleapi-local, on the pseudo-terminal a person's terminal is."""
    expect_json(command, answer, context)
    same_log_lines(shown(command, 1), context.terminals["first"].servers[-1].printed(), context.sids)


def plan():
    first_run = Serve(r"^cargo run -p teleapi-local( +#.*)?$", "first", "Ctrl-C stops it.", check=listens_on_8080)
    return [
        # The two commands: the first runs as a newcomer types it, and stops on Ctrl-C.
        first_run,
        Skip(r"^tests/run ", "it is the command that runs this test"),
        # The walkthrough, on the same terminal after Ctrl-C.
        Run(r"^export TELEAPI_DEV_ACCOUNT_SID=", "first"),
        Run(r"^export TELEAPI_DEV_AUTH_TOKEN=", "first"),
        Serve(r"^cargo run -p teleapi-local( +#.*)?$", "first", "Ctrl-C stops it.", check=expect_banner, stop_first="first"),
        Run(r"^AC=AC"),
        Run(r"^B="),
        Run(r"^API="),
        Run(r"/dev/IncomingCalls .*call-bob$", check=expect_json),
        Run(r"^CA=CA[0-9a-f]{32}$", check=expect_sid_in("CA", "CA")),
        Run(r"\$API/Calls.json$", check=expect_calls, until=True),
        Run(r"/Calls/\$CA.json -d Url=", check=expect_json),
        Run(r"\$API/Calls.json$", check=expect_calls, until=True),
        Run(r"/Modifications.json$", check=expect_intent_and_log, until=True),
        # The moto section: the in-memory stack stopped, moto and teleapi-local on it.
        Serve(r"^\.venv/bin/moto_server -H 127\.0\.0\.1 -p 5000 &$", "first", None, port=5000, stop_first="first"),
        Serve(r"^cargo run -p teleapi-local -- --aws-endpoint", "first", "Ctrl-C stops it."),
        Serve(r"cargo lambda watch --invoke-port 9009$", "third", None, port=9009),
        Run(r"^CA=\$\(curl .*call-bob \| jq -r \.sid\)$", check=expect_sid_in("CA", "CA")),
        # Its first request builds the function.
        Run(r"9009/lambda-url/get-call/", check=expect_got_call, slow=True),
        # Conferences.
        Run(r"/dev/IncomingCalls .*/dev/rcml/conference$", check=expect_ok),
        Run(r"^CF=\$\(curl", check=expect_sid_in("CF", "CF"), until=True),
        Run(r"/Participants.json .*-d Label=agent$", check=expect_ok),
        Run(r"/Participants/agent.json -d Hold=true", check=expect_field("hold", True), until=True),
        # Call queues: the queue's sid is made of the account and the name, so the README's is
        # the run's.
        Run(r"/Queues.json --data-urlencode FriendlyName=support -d MaxSize=20 ", check=expect_json),
        Run(r"/dev/IncomingCalls .*/dev/rcml/queue$", check=expect_ok),
        Run(r"^QU=QU[0-9a-f]{32}$", check=expect_sid_in("QU", "QU")),
        Run(r"/Queues/\$QU/Members.json \| jq", check=expect_json, until=True),
        Run(r"/Queues/\$QU/Members/Front.json -d Url=", check=expect_json),
        # Recordings.
        Run(r"^RE=\$\(curl", check=expect_sid_in("RE", "RE")),
        Run(r"Twilio.CURRENT.json -d Status=paused", check=expect_field("status", "paused")),
        Run(r"Twilio.CURRENT.json -d Status=in-progress", check=expect_field("status", "in-progress")),
        Run(r"/Recordings/\$RE.json -d Status=stopped", check=expect_field("status", "stopped")),
        Run(r"/Recordings/\$RE.json \| jq", check=recording_completed, until=True),
        Run(r"-o call.wav", check=expect_wav, until=True),
        # Media streams and digits.
        Run(r"/Streams.json -d Url=ws://127.0.0.1:9000/media", check=expect_field("status", "in-progress")),
        Run(r"/dev/Calls/\$CA/Digits -d Digits=42$", check=expect_nothing),
        Run(r"/Streams/bot.json -d Status=stopped$", check=expect_streamed),
        # What happened to a call.
        Run(r"/Calls/\$CA/Events.json$", check=expect_ok),
        Run(r"/Notifications.json\?Log=0", check=expect_ok),
        # Deploying: the SAM CLI needs an AWS account; tests/deploy runs `sam build` (x86_64).
        Skip(r"^sam build ", "needs the functions' arm64 build; tests/deploy runs sam build for x86_64"),
        Skip(r"^sam deploy ", "needs an AWS account"),
        Skip(
            r"^cargo lambda build --release --arm64",
            "a release build of eight functions for arm64 (minutes, and Rust's aarch64 target); "
            "tests/deploy builds them for x86_64",
        ),
        # Accounts: teleapi-admin against the README's moto, for the deployer's AWS environment.
        Run(r"^export TELEAPI_ACCOUNTS_TABLE=", "deployer", fill={"<AccountsTableName output>": "accounts_table"}),
        Run(
            r"^export TELEAPI_REST_API_ID=",
            "deployer",
            fill={
                "<RestApiId>": "rest_api_id",
                "<ApiStageName>": "stage",
                "<DefaultUsagePlanId>": "default_plan",
                "<ApiKeyPrefix>": "key_prefix",
                "<KeyPoolTableName>": "key_pool_table",
            },
        ),
        Run(r"teleapi-admin -- sync-usage-plans ", "deployer", check=expect_pool),
        Run(r"teleapi-admin -- create-account \"Acme\" ", "deployer", check=expect_account),
        Run(
            r"teleapi-admin -- create-account \"Acme EU\" --parent AC\.\.\.$",
            "deployer",
            check=expect_admin(lambda body, made: body["parent_account_sid"] == made["AC..."]),
            fill={"AC...": "AC..."},
        ),
        Run(
            r"teleapi-admin -- rotate-token AC\.\.\. ",
            "deployer",
            check=expect_admin(lambda body, made: body["auth_token"] != made["token"]),
            fill={"AC...": "AC..."},
        ),
        Run(
            r"teleapi-admin -- suspend AC\.\.\. ",
            "deployer",
            check=expect_admin(lambda body, _: body["status"] == "suspended"),
            fill={"AC...": "AC..."},
        ),
        Run(
            r"teleapi-admin -- set-listing-shards AC\.\.\. 16 ",
            "deployer",
            check=expect_admin(lambda body, _: body["listing_shards"] == 16),
            fill={"AC...": "AC..."},
        ),
        Run(
            r"teleapi-admin -- set-rate-limit AC\.\.\. 2000/4000 ",
            "deployer",
            check=expect_admin(
                lambda body, _: body["rate_limit"] == {"per_second": 2000, "burst": 4000}
                and body["usage_key"] == f"teleapi-readme-{body['sid']}"
            ),
            fill={"AC...": "AC..."},
        ),
        # Media workers: the SIP/RTP worker in place of the simulated one, and a SIP phone.
        Serve(
            r"^cargo run -p teleapi-local -- --sip 127\.0\.0\.1:5060 --rtp-ports 30000-30999$",
            "first",
            "Ctrl-C stops it.",
            check=expect_sip_banner,
            stop_first="first",
        ),
        Run(r"^CA=\$\(curl .*To=sip:alice@127\.0\.0\.1:5062 .*\| jq -r \.sid\)$", check=expect_sid_in("CA", "CA"), before=start_phone),
        Run(r"\$API/Calls/\$CA\.json \| jq '\{status, start_time\}'$", check=expect_spoken, until=True),
        Run(r"IncomingPhoneNumbers\.json --data-urlencode PhoneNumber=\+15557650000 .*voice_url\}'$", check=expect_json),
        Run(
            r"Calls\.json\?To=%2B15557650000\" \| jq '\.calls\[0\] \| \{direction, from, status\}'$",
            check=expect_inbound_call,
            until=True,
            before=phone_calls_the_number,
        ),
    ]


# Running the plan -------------------------------------------------------------------------------


class Context:
    def __init__(self, workdir):
        # A newcomer's environment: not the test run's own settings (its moto, its log level).
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("TELEAPI_", "AWS_", "RUST_LOG"))
        }
        env.setdefault("TERM", "xterm")
        self.sids = Sids()
        self.values = {}
        self.peer = None
        self.phone = None
        self.terminals = {
            "first": Terminal("the first terminal", ROOT, env),
            # Where the curl commands run: call.wav lands here, not in the checkout.
            "second": Terminal("the second terminal", workdir, env),
            "third": Terminal("the third terminal", ROOT, env),
            # A deployer's, in the checkout.
            "deployer": Terminal("the deployer's terminal", ROOT, env),
        }

    def deployment(self):
        """What a deployer's stack outputs name, made on the README's moto for teleapi-admin: a
        REST API with its default usage plan, and the accounts table teleapi-local created; and
        the deployer's AWS environment pointed at that moto."""
        import boto3

        aws = {
            "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "readme",
            "AWS_SECRET_ACCESS_KEY": "readme",
        }
        gateway = boto3.client(
            "apigateway",
            endpoint_url=aws["AWS_ENDPOINT_URL"],
            region_name=aws["AWS_REGION"],
            aws_access_key_id=aws["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=aws["AWS_SECRET_ACCESS_KEY"],
        )
        api = gateway.create_rest_api(name="teleapi-readme")["id"]
        plan = gateway.create_usage_plan(name="teleapi-readme-default")["id"]
        printed = self.terminals["first"].servers[-1].printed()
        table = re.search(r"export TELEAPI_ACCOUNTS_TABLE=(\S+)", printed)
        pool = re.search(r"export TELEAPI_KEY_POOL_TABLE=(\S+)", printed)
        if table is None or pool is None:
            fail("teleapi-local on moto did not print TELEAPI_ACCOUNTS_TABLE and TELEAPI_KEY_POOL_TABLE")
        # The deployer's AWS account, as far as API Gateway's key quota goes: moto has no quota,
        # and filling a pool up to the real one (10,000 keys) would take the test minutes.
        aws["TELEAPI_API_KEY_QUOTA"] = str(README_KEY_QUOTA)
        self.values.update(
            key_pool_table=pool.group(1),
            accounts_table=table.group(1),
            rest_api_id=api,
            stage="live",
            default_plan=plan,
            key_prefix="teleapi-readme-",
        )
        self.terminals["deployer"].env.update(aws)

    def fill(self, step, text):
        for placeholder, name in step.fill.items():
            if placeholder not in text:
                fail(f"the README no longer has {placeholder} in {text!r}")
            if name not in self.values:
                fail(f"nothing made a value for {placeholder} before {text!r}")
            text = text.replace(placeholder, self.values[name])
        return text


def run_step(step, command, context):
    if isinstance(step, Skip):
        print(f"  skipped: {command.text}\n    ({step.why})", flush=True)
        return
    terminal = context.terminals[step.terminal]
    text = context.fill(step, context.sids.apply(command.text))
    if isinstance(step, Serve):
        if step.stop_first:
            context.terminals[step.stop_first].stop()
        if "cargo lambda watch" in text:
            # "paste those export lines": what teleapi-local on moto printed.
            printed = context.terminals["first"].servers[-1].printed()
            for name, value in re.findall(r"^\s*export (\w+)=(\S*)$", printed, re.M):
                terminal.env[name] = value
        server = terminal.serve(text)
        if step.port:
            wait_port(step.port)
        if step.ready:
            server.wait_for(step.ready)
        if step.check:
            step.check(command, None, context)
        print(f"  started: {text}", flush=True)
        return
    if step.before:
        step.before(context)
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        answer, status = terminal.run(text, step.timeout)
        try:
            if status != 0:
                fail(f"exit status {status}:\n{answer[-3000:]}")
            if step.check:
                step.check(command, answer, context)
            break
        except Failed:
            if not step.until or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    print(f"  ran: {text}", flush=True)


def main():
    commands = readme_commands()
    steps = plan()
    with tempfile.TemporaryDirectory() as workdir:
        context = Context(workdir)
        context.peer = StreamPeer(9000)
        try:
            for number, command in enumerate(commands):
                if number >= len(steps):
                    fail(f"{command}\n  is not in tests/readme/readme.py's plan: run it there, or say why not")
                step = steps[number]
                if not re.search(step.matches, command.text):
                    fail(f"{command}\n  is not what the plan expects here ({step.matches!r})")
                if getattr(step, "fill", None) and "accounts_table" not in context.values:
                    context.deployment()
                try:
                    run_step(step, command, context)
                except Failed as failure:
                    fail(f"{command}\n  {failure}")
            if len(steps) > len(commands):
                fail(f"the README no longer has {steps[len(commands)].matches!r}")
            for terminal in context.terminals.values():
                terminal.stop()
            if context.phone:
                context.phone.stop()
            for terminal in context.terminals.values():
                terminal.kill()
        except Failed as failure:
            if context.phone:
                context.phone.stop()
            for terminal in context.terminals.values():
                terminal.kill()
            sys.exit(f"README: {failure}")
        except BaseException:
            for terminal in context.terminals.values():
                terminal.kill()
            if context.phone:
                context.phone.stop()
            raise
    print(f"README: all {len(commands)} commands ran as written", flush=True)


if __name__ == "__main__":
    main()
