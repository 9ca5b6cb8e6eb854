#!/bin/sh
# t1007: `encore bench farm` runs a real coordinator (its own process, and
# with --threads in this one) with sim workers and prints the fields of
# docs/json.md with sane values: every task done, efficiency in (0, 1],
# affinity sending fewer bytes than whole windows. Bad options fail cleanly.
. "$(dirname "$0")/farm-lib.sh"
# field NAME FILE: the number a flat JSON object gives NAME.
field() { perl -MJSON::PP -e 'local $/; my $o = decode_json(<STDIN>); print $o->{$ARGV[0]} // "missing"' "$1" <"$2"; }
for mode in process threads; do
    flag=""
    [ "$mode" = threads ] && flag=--threads
    "$BIN/encore" bench farm --workers 3 --windows 24 --steps 4 --sim-ms 5 --json $flag \
        >"$T/$mode.json" 2>"$T/$mode.err"
    rc=$?
    check "$mode: exits 0 (rc $rc)" [ "$rc" -eq 0 ]
    check "$mode: 96 tasks" [ "$(field tasks "$T/$mode.json")" = 96 ]
    eff=$(field efficiency "$T/$mode.json")
    check "$mode: efficiency $eff in (0, 1]" perl -e 'exit !($ARGV[0] > 0 && $ARGV[0] <= 1)' "$eff"
    ideal=$(field ideal_s "$T/$mode.json")
    check "$mode: ideal = max(S, ceil(K*S/W)) * N = 0.16 s ($ideal)" [ "$ideal" = 0.16 ]
    bpt=$(field bytes_per_task "$T/$mode.json")
    bptn=$(field bytes_per_task_no_affinity "$T/$mode.json")
    check "$mode: affinity sends less ($bpt < $bptn)" perl -e 'exit !($ARGV[0] < $ARGV[1])' "$bpt" "$bptn"
    rss=$(field coordinator_rss_bytes "$T/$mode.json")
    check "$mode: coordinator RSS reported ($rss)" perl -e 'exit !($ARGV[0] > 1e6)' "$rss"
    busy=$(field worker_busy_ms_per_task "$T/$mode.json")
    check "$mode: a sim task takes its 5 ms ($busy)" perl -e 'exit !($ARGV[0] >= 5 && $ARGV[0] < 50)' "$busy"
done
"$BIN/encore" bench farm --workers 0 >"$T/bad.out" 2>"$T/bad.err"
rc=$?
check "--workers 0 fails (rc $rc)" [ "$rc" -ne 0 ]
check "and says what must hold" grep -q "workers, windows, steps must be >= 1" "$T/bad.err"
"$BIN/encore" bench farm --size 30 >/dev/null 2>"$T/bad2.err"
check "--size 30 (not a multiple of 8) fails" grep -q "multiple of 8" "$T/bad2.err"
finish
