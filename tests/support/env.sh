# Sourced by tests/run and tests/bench: the project-local Python tools and a moto server.

venv=.venv

# Creates .venv with the tools of tests/requirements.txt the first time, or when that file
# changes. They are installed by uv (pinned below, from PyPI like the rest), which resolves and
# installs them several times faster than pip: minutes of every run from a clean clone.
# `--native-tls`: the machine's certificate store, as pip uses it.
UV_VERSION=0.13.9
ensure_venv() {
    local stamp="$venv/.requirements"
    if ! cmp -s tests/requirements.txt "$stamp" 2>/dev/null; then
        echo "installing test tools into $venv" >&2
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "uv==$UV_VERSION"
        "$venv/bin/uv" pip install --quiet --native-tls --python "$venv/bin/python" \
            -r tests/requirements.txt
        cp tests/requirements.txt "$stamp"
    fi
}

# Starts moto on a free loopback port for the rest of the script (it serves until its standard
# input closes, which happens when the script exits) and exports its address.
start_moto() {
    # Its request log goes to .venv/moto.log, not into the test output.
    coproc MOTO { exec "$venv/bin/python" tests/support/moto_server.py 2>"$venv/moto.log"; }
    moto_pid=$MOTO_PID
    trap 'kill "$moto_pid" 2>/dev/null || true' EXIT
    local line
    read -r -t 60 line <&"${MOTO[0]}" || { echo "moto did not start" >&2; exit 1; }
    export TELEAPI_TEST_AWS_ENDPOINT="http://127.0.0.1:${line#port=}"
    echo "moto on $TELEAPI_TEST_AWS_ENDPOINT" >&2
}

# wrk (Debian's package), the load generator of the load test and the benchmarks: installed
# when missing and this runs as root (as CI does), else named as what to install.
ensure_wrk() {
    command -v wrk >/dev/null && return
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing wrk" >&2
        apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null
    else
        echo "the load test needs wrk: sudo apt-get install wrk" >&2
        exit 1
    fi
}

# jq (Debian's package), which the README's examples use to pick a sid out of an answer, and
# which tests/readme/readme.py runs as the README shows: installed when missing and this runs as
# root (as CI does), else named as what to install.
ensure_jq() {
    command -v jq >/dev/null && return
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing jq" >&2
        apt-get update -qq >/dev/null && apt-get install -y -qq jq >/dev/null
    else
        echo "the README's test needs jq: sudo apt-get install jq" >&2
        exit 1
    fi
}

# Runs a command in a network namespace of its own, with only a loopback interface: the ports it
# listens on are free whatever else the machine runs, and nothing it starts reaches the internet.
# As root (CI) a new network namespace; otherwise inside a user namespace where this user is root.
in_private_network() {
    local as_root=()
    [ "$(id -u)" = 0 ] || as_root=(--map-root-user)
    unshare --net "${as_root[@]}" -- sh -c 'PATH="$PATH:/usr/sbin:/sbin"; ip link set lo up && exec "$@"' sh "$@"
}

# Debian's Chromium and its WebDriver, for the console's browser test (tests/console.rs):
# installed when missing and this runs as root (as CI does), else named as what to install.
# The media tests' real phones and sounds, from Debian: baresip (SIP phones that play a WAV file
# and record what they hear), SIPp (load and hostile SIP), espeak-ng (the SIP/RTP worker's
# <Say>) and sox. Installed when missing and this runs as root (as CI does).
ensure_phones() {
    command -v baresip >/dev/null && command -v sipp >/dev/null &&
        command -v espeak-ng >/dev/null && command -v sox >/dev/null && return
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing baresip-core, sip-tester, espeak-ng and sox" >&2
        apt-get update -qq >/dev/null &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
                baresip-core sip-tester espeak-ng sox >/dev/null
    else
        echo "the media tests need: sudo apt-get install baresip-core sip-tester espeak-ng sox" >&2
        exit 1
    fi
}

ensure_chromium() {
    [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && return
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing chromium and chromium-driver" >&2
        apt-get update -qq >/dev/null &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    else
        echo "the console test needs Chromium: sudo apt-get install chromium chromium-driver" >&2
        exit 1
    fi
}

# The SAM CLI of .venv, with cargo-lambda on PATH as its Rust builds need, and offline: no
# telemetry, and its weekly look for a newer version on PyPI marked as just done.
sam() {
    local home="$PWD/$venv/sam-cli"
    mkdir -p "$home"
    printf '{"telemetryEnabled": false, "lastVersionCheck": %s}\n' "$(date +%s)" >"$home/metadata.json"
    PATH="$PWD/$venv/bin:$PATH" SAM_CLI_TELEMETRY=0 __SAM_CLI_APP_DIR="$home" "$venv/bin/sam" "$@"
}
