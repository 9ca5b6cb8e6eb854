#!/bin/sh
# t1001: real coordinator and 1, 2, 3 sim workers on ipc://: the final
# latents are byte-identical to the single-process loop every time.
. "$(dirname "$0")/farm-lib.sh"
start_coord
start_worker a 2
for w in 1 2 3; do
    id=$(submit)
    check "$w worker(s): job $id done" wait_state "$id" done 60
    check "$w worker(s): latents byte-identical to render --local" same_as_reference "$id"
    [ $w -lt 3 ] && start_worker "w$w" 2
done
check "status --json has a state field" sh -c "'$BIN/encore' --coordinator '$EP' status --json | grep -q '\"state\":\"done\"'"
check "workers --json lists 3 workers" sh -c "[ \$('$BIN/encore' --coordinator '$EP' workers --json | grep -o '\"backend\":\"sim\"' | wc -l) -eq 3 ]"
# Priorities: with one busy farm, a later high-priority job finishes first.
lo=$(submit --steps 60) # long enough to be still running when hi arrives
hi=$(submit --steps 6 --priority 10)
check "high priority job done" wait_state "$hi" done 60
check "low priority job done" wait_state "$lo" done 60
fh=$(job_field "$hi" finished_at); fl=$(job_field "$lo" finished_at)
check "the later, higher-priority job finished first ($fh < $fl)" awk "BEGIN{exit !($fh < $fl)}"
finish
