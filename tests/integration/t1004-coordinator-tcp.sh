#!/bin/sh
# t1004: the coordinator on tcp://127.0.0.1:<free port> with two worker
# processes: the final latents are byte-identical to the single-process loop
# (render --local --backend sim), and both workers took part.
. "$(dirname "$0")/farm-lib.sh"
PORT=$(perl -MIO::Socket::INET -e \
    '$s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1", LocalPort => 0) or die; print $s->sockport')
EP="tcp://127.0.0.1:$PORT"
start_coord
check "coordinator listens on $EP" sh -c "'$BIN/encore' --coordinator '$EP' status >/dev/null"
start_worker a 3
start_worker b 3
id=$(submit)
check "job $id done over tcp" wait_state "$id" done 60
check "latents byte-identical to render --local --backend sim" same_as_reference "$id"
workers_json=$("$BIN/encore" --coordinator "$EP" workers --json)
ran=$(echo "$workers_json" | grep -o '"tasks_done":[1-9][0-9]*' | wc -l)
check "both workers ran tasks ($ran of 2)" [ "$ran" -eq 2 ]
check "no stale results, no bad messages" sh -c "'$BIN/encore' --coordinator '$EP' status '$id' --json | grep -q '\"stale_results\":0'"
finish
