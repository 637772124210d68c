# Sourced by tests/run and tests/bench: the project-local Python tools and a moto server.

venv=.venv

# Creates .venv with the tools of tests/requirements.txt the first time, or when that file
# changes.
ensure_venv() {
    local stamp="$venv/.requirements"
    if ! cmp -s tests/requirements.txt "$stamp" 2>/dev/null; then
        echo "installing test tools into $venv" >&2
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt
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
