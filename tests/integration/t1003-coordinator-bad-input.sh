#!/bin/sh
# t1003: bad input gets a clear error naming it and changes nothing else.
. "$(dirname "$0")/farm-lib.sh"
E="$BIN/encore --coordinator $EP"
start_coord
start_worker a 1
id=$(submit)
check "a good job finishes" wait_state "$id" done 60

bad() { # bad DESC EXPECTED_STATUS PATTERN CMD...: exit status and message
    _d=$1 _st=$2 _pat=$3; shift 3
    "$@" >"$T/out" 2>"$T/err"; _got=$?
    check "$_d: exit $_st and says '$_pat'" sh -c "[ $_got -eq $_st ] && grep -q \"$_pat\" '$T/err'"
}
bad "steps 0" 2 "steps must be at least 1" $E submit $JOB --steps 0
bad "overlap >= window" 2 "overlap 9 must be smaller" $E submit $JOB --overlap 9
bad "unknown blend scheme" 2 "unknown blend scheme 'cubic'" $E submit $JOB --blend cubic
bad "unknown job id (status)" 2 "unknown job 999" $E status 999
bad "unknown job id (cancel)" 2 "unknown job 999" $E cancel 999
bad "cancel of a finished job" 2 "job $id is already done" $E cancel "$id"
bad "get of an unknown job" 2 "unknown job 77" $E get 77 --latents "$T/x.st"
bad "engine backend not in this build" 1 "not available in this build" \
    "$BIN/encore-worker" --coordinator "$EP" --backend engine --tiny
bad "mp4 output not in this build" 1 "not in this build yet" $E get "$id" -o "$T/x.mp4"
bad "no coordinator" 1 "no answer from the coordinator" \
    "$BIN/encore" --coordinator "ipc://$T/nobody.sock" status
check "nothing else changed: still one job" sh -c "[ \$($E status --json | grep -o '\"id\":' | wc -l) -eq 1 ]"
check "the job is still done" test "$(job_field "$id" state)" = done

mkdir -p "$T/ro" && chmod 555 "$T/ro"
if [ "$(id -u)" -ne 0 ]; then
    bad "unwritable state dir" 1 "is not writable" \
        "$BIN/encore-coordinator" --listen "ipc://$T/c2.sock" --state "$T/ro"
else
    n=$((n + 1)); echo "ok $n # skip running as root"
fi
kill -TERM "$CPID"; wait "$CPID" 2>/dev/null
sqlite3 "$T/state/encore.db" "PRAGMA user_version=99"
bad "database from a newer schema" 1 "schema version 99, newer" \
    "$BIN/encore-coordinator" --listen "ipc://$T/c3.sock" --state "$T/state"
finish
