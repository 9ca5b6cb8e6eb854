#!/bin/sh
# t1005: `encore watch JOB` follows a small sim job to the end: exit 0, the
# final progress line says done with every task, and output that is not a
# terminal is line-based (no carriage returns). Unknown jobs fail clearly.
. "$(dirname "$0")/farm-lib.sh"
start_coord
start_worker a 5
id=$(submit)
"$BIN/encore" --coordinator "$EP" watch "$id" >"$T/watch.out" 2>"$T/watch.err"
rc=$?
check "watch exits 0 when the job is done (rc $rc)" [ "$rc" -eq 0 ]
last=$(tail -n 1 "$T/watch.err")
check "last line: job $id done, 52/52 tasks, 13/13 windows ($last)" sh -c \
    "echo '$last' | grep -Eq '^job $id +done +steps +4\.0/4 windows 13/13 tasks 52/52 .*\[#+\]$'"
check "non-tty output has no carriage returns" sh -c "! tr -d '\n' <'$T/watch.err' | grep -q \"\$(printf '\r')\""
check "every line is a progress line" sh -c "! grep -Ev '^job $id +(queued|running|done) +steps ' '$T/watch.err'"
check "stdout stays empty" [ ! -s "$T/watch.out" ]
"$BIN/encore" --coordinator "$EP" watch 999 >/dev/null 2>"$T/bad.err"
rc=$?
check "watch of an unknown job fails (rc $rc)" [ "$rc" -ne 0 ]
check "and names the job" grep -q "unknown job 999" "$T/bad.err"
finish
