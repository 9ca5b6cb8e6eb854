#!/bin/sh
# t1006: the coordinator SIGKILLed again and again while fast workers (0 ms
# tasks) stream results: tasks leave before each commit, so this checks that
# nothing acknowledged is lost and no window's stored history is overwritten
# past what the database commits (the job still ends byte-identical).
. "$(dirname "$0")/farm-lib.sh"
COORD_OPTS="--lease-ms 1500 --heartbeat-ms 200" # durable: fsync at every commit
start_coord
for w in a b c; do start_worker "$w" 0; done
id=$(submit --samples 2000000 --steps 30)
for round in 1 2 3 4 5; do
    sleep 0.$((3 + round))
    kill -9 "$CPID"
    wait "$CPID" 2>/dev/null
    start_coord
done
check "job $id done after 5 coordinator kills" wait_state "$id" done 120
check "restarts recovered running tasks" grep -q "recovered" "$T/coord.log"
ref_fast() { "$BIN/encore" render --local $JOB --samples 2000000 --steps 30 --save-latents "$T/ref30.st"; }
check "reference render" ref_fast
check "latents byte-identical to render --local" sh -c \
    "'$BIN/encore' --coordinator '$EP' get '$id' --latents '$T/job.st' && cmp -s '$T/ref30.st' '$T/job.st'"
finish
