#!/bin/sh
# t1009: `encore-coordinator --http ADDR` serves read-only status over
# HTTP from its own event loop: /status is byte for byte `encore status
# --json` once a small sim job is done, /status/ID the job's object,
# /workers names the worker, /metrics counts the job's results, /healthz
# says ok; unknown paths and jobs get 404, other methods 405, a malformed
# or oversized request 400, a connection beyond 32 503; a client that connects and sends nothing
# neither stalls other requests nor stays open much past 5 s; a bad
# address and a port in use are refused at start, naming them.
. "$(dirname "$0")/farm-lib.sh"
# get.pl PORT METHOD PATH HEAD BODY: one request (METHOD RAW: the request
# is stdin), the response's head and body into files.
cat >"$T/get.pl" <<'PERL'
use strict;
use IO::Socket::INET;
my ($port, $method, $path, $headf, $bodyf) = @ARGV;
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => 3)
    or die "connect: $!\n";
my $req = $method eq 'RAW' ? do { local $/; <STDIN> }
    : "$method $path HTTP/1.1\r\nHost: localhost\r\nUser-Agent: t1009\r\n\r\n";
$SIG{ALRM} = sub { die "timeout\n" };
alarm 3;
print $s $req;
my $resp = '';
while (1) { my $k = sysread($s, my $chunk, 65536); last if !$k; $resp .= $chunk; }
alarm 0;
my ($head, $body) = split /\r\n\r\n/, $resp, 2;
open my $h, '>', $headf or die; print $h $head; close $h;
open my $b, '>', $bodyf or die; binmode $b; print $b (defined $body ? $body : ''); close $b;
PERL
PORT=$(perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1:0")->sockport')
get() { perl "$T/get.pl" "$PORT" "$@" "$T/head" "$T/body"; }
code() { sed -n '1s/^HTTP\/1\.1 \([0-9]*\) .*/\1/p' "$T/head" | tr -d '\r'; }
has_code() { [ "$(code)" = "$1" ]; }

start_coord --http "127.0.0.1:$PORT"
# A client that connects and sends nothing, from the start: how long until
# the coordinator closes it.
perl -MIO::Socket::INET -MTime::HiRes=time -e '
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $ARGV[0]) or die;
    my $t = time; my $k = sysread($s, my $x, 1); printf "%.1f %d\n", time - $t, length($x // "");
' "$PORT" >"$T/slow.out" 2>&1 &
SLOW=$!
PIDS="$PIDS $SLOW"
sleep 0.2
get GET /healthz
check "/healthz: 200 ok while a silent client is connected" sh -c \
    "[ '$(code)' = 200 ] && [ \"\$(cat '$T/body')\" = ok ]"

start_worker a 2
id=$(submit)
check "the sim job is done" wait_state "$id" done 20
"$BIN/encore" --coordinator "$EP" status --json >"$T/cli-status.json"
get GET /status
check "/status: 200" has_code 200
check "/status is byte for byte encore status --json" cmp "$T/cli-status.json" "$T/body"
check "/status is application/json" grep -qi '^Content-Type: application/json' "$T/head"
"$BIN/encore" --coordinator "$EP" status "$id" --json >"$T/cli-job.json"
get GET "/status/$id?pretty=no"
check "/status/$id is encore status $id --json (query ignored)" cmp "$T/cli-job.json" "$T/body"
get GET /workers
check "/workers parses and names worker a" perl -MJSON::PP -e '
    local $/; open my $f, "<", $ARGV[0] or die; my $j = decode_json(<$f>);
    exit !(ref $j->{workers} eq "ARRAY" && grep { $_->{name} eq "a" } @{$j->{workers}})' \
    "$T/body"
total=$(job_field "$id" tasks_total)
get GET /metrics
check "/metrics: text format" grep -q '^# TYPE encore_coordinator_results_total counter' "$T/body"
check "/metrics: results = the job's $total tasks" \
    grep -qx "encore_coordinator_results_total $total" "$T/body"
check "/metrics: one job done, one worker" sh -c \
    "grep -qx 'encore_jobs{state=\"done\"} 1' '$T/body' && grep -qx 'encore_workers_connected 1' '$T/body'"
get GET /nope
check "unknown path: 404 with a JSON error" sh -c \
    "[ '$(code)' = 404 ] && grep -q '\"error\":\"unknown path' '$T/body'"
get GET /status/999
check "unknown job: 404" sh -c "[ '$(code)' = 404 ] && grep -q \"unknown job '999'\" '$T/body'"
get POST /status
check "POST: 405" has_code 405
printf 'HELLO\r\n\r\n' | get RAW -
check "malformed request line: 400" has_code 400
perl -e 'print "GET /status HTTP/1.1\r\nX-Big: ", "a" x 9000, "\r\n\r\n"' | get RAW -
check "request head over 8 KiB: 400" has_code 400
get HEAD /healthz
check "HEAD: 200, no body" sh -c "[ '$(code)' = 200 ] && [ ! -s '$T/body' ]"
# The silent client holds one of the 32 slots: 31 more, and the next
# request is turned away with 503.
perl -MIO::Socket::INET -e '
    my @held = map { IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $ARGV[0])
        or die "connect: $!\n" } 1 .. 31;
    select undef, undef, undef, 0.3;
    system "perl", @ARGV[1 .. $#ARGV];
' "$PORT" "$T/get.pl" "$PORT" GET /healthz "$T/head" "$T/body"
check "over 32 connections: 503" has_code 503
get GET /healthz
check "slots freed once those clients close: 200" has_code 200

wait "$SLOW"
read -r slow_s slow_n <"$T/slow.out"
check "the silent client is closed by the coordinator after ~5 s ($slow_s s, $slow_n bytes)" \
    perl -e 'exit !($ARGV[0] >= 4 && $ARGV[0] < 8 && $ARGV[1] == 0)' "$slow_s" "$slow_n"

"$BIN/encore-coordinator" --listen "ipc://$T/other.sock" --state "$T/other" \
    --http "127.0.0.1:$PORT" >"$T/inuse.log" 2>&1
rc=$?
check "a port in use is refused (rc $rc) naming it" sh -c \
    "[ $rc -ne 0 ] && grep -q \"cannot listen for http on '127.0.0.1:$PORT'\" '$T/inuse.log'"
"$BIN/encore-coordinator" --listen "ipc://$T/other.sock" --state "$T/other" \
    --http 127.0.0.1:99999 >"$T/bad.log" 2>&1
rc=$?
check "--http 127.0.0.1:99999 is refused (rc $rc) naming it" sh -c \
    "[ $rc -eq 2 ] && grep -q \"bad http address '127.0.0.1:99999'\" '$T/bad.log'"
finish
