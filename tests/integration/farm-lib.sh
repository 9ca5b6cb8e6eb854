# farm-lib.sh - shared by the farm's integration tests (sourced, not run).
# Each test gets its own temp dir, ipc:// endpoint and state dir, and a trap
# that kills every process it started (SIGCONT first: stopped ones too).
BIN=${ENCORE_BIN:-$(cd "$(dirname "$0")/../../build/bin" && pwd)}
T=$(mktemp -d /tmp/encore-it.XXXXXX)
EP="ipc://$T/coord.sock"
PIDS=""
n=0
fails=0
cleanup() {
    for p in $PIDS; do kill -CONT "$p" 2>/dev/null; kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM # runs cleanup through EXIT, and stops the test

check() { # check DESCRIPTION COMMAND...
    _desc=$1; shift
    n=$((n + 1))
    if "$@"; then echo "ok $n - $_desc"; else
        echo "not ok $n - $_desc"; fails=$((fails + 1))
        [ -n "$KEEP" ] && cp -r "$T" "$KEEP"
    fi
}
finish() { echo "1..$n"; [ "$fails" -eq 0 ]; }

COORD_OPTS="--lease-ms 1500 --heartbeat-ms 200 --no-fsync"
start_coord() {
    "$BIN/encore-coordinator" --listen "$EP" --state "$T/state" $COORD_OPTS "$@" \
        >>"$T/coord.log" 2>&1 &
    CPID=$!
    PIDS="$PIDS $CPID"
    i=0
    while [ $i -lt 50 ] && ! "$BIN/encore" --coordinator "$EP" status >/dev/null 2>&1; do
        sleep 0.1; i=$((i + 1))
    done
}
start_worker() { # start_worker NAME SIM_MS
    "$BIN/encore-worker" --coordinator "$EP" --backend sim --sim-ms "$2" --name "$1" \
        >>"$T/worker-$1.log" 2>&1 &
    WPID=$!
    PIDS="$PIDS $WPID"
}
# The job every exactness test renders: 13 windows x 4 steps, O=3 of F=9.
JOB="--backend sim --samples 200000 --size 32x32 --steps 4 --clip-frames 33 --overlap 3"
submit() { "$BIN/encore" --coordinator "$EP" submit $JOB "$@"; }
job_field() { # job_field JOB FIELD -> value from status --json
    "$BIN/encore" --coordinator "$EP" status "$1" --json 2>/dev/null |
        sed -n "s/.*\"$2\":\"\{0,1\}\([^,\"}]*\).*/\1/p"
}
wait_state() { # wait_state JOB STATE SECONDS
    i=0
    while [ $i -lt $(($3 * 10)) ]; do
        [ "$(job_field "$1" state)" = "$2" ] && return 0
        sleep 0.1; i=$((i + 1))
    done
    return 1
}
wait_tasks() { # wait_tasks JOB N SECONDS: until tasks_done >= N
    i=0
    while [ $i -lt $(($3 * 10)) ]; do
        _d=$(job_field "$1" tasks_done)
        [ -n "$_d" ] && [ "$_d" -ge "$2" ] && return 0
        sleep 0.1; i=$((i + 1))
    done
    return 1
}
reference() { # the single-process loop's latents, once per test
    [ -f "$T/ref.st" ] || "$BIN/encore" render --local $JOB --save-latents "$T/ref.st"
}
same_as_reference() { # same_as_reference JOB
    reference && "$BIN/encore" --coordinator "$EP" get "$1" --latents "$T/job$1.st" &&
        cmp -s "$T/ref.st" "$T/job$1.st"
}
