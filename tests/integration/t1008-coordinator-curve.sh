#!/bin/sh
# t1008: CurveZMQ. Keys made with `encore keys gen`; the coordinator on
# tcp://127.0.0.1:<free port> with --keys: an authorized worker and client
# render a job whose latents are byte-identical to the single-process loop;
# a worker whose key is not authorized gets no task and the coordinator log
# names its address and key; a worker without keys gets nothing either;
# clients without keys or with an unknown key fail at once with an error
# that says why. Without --keys a non-loopback endpoint is refused at start
# (allowed with --insecure, with a warning); bad key files are named.
. "$(dirname "$0")/farm-lib.sh"
PORT=$(perl -MIO::Socket::INET -e \
    '$s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1", LocalPort => 0) or die; print $s->sockport')
EP="tcp://127.0.0.1:$PORT"
E="$BIN/encore"
K="$T/keys"
unset ENCORE_KEYS

bad() { # bad DESC PATTERN CMD...: fails (any status but 0) and says PATTERN on stderr
    _d=$1 _pat=$2; shift 2
    "$@" >"$T/out" 2>"$T/err"; _got=$?
    check "$_d: fails and says '$_pat'" sh -c "[ $_got -ne 0 ] && grep -qF -- \"\$1\" '$T/err'" \
        sh "$_pat"
    [ $_got -ne 0 ] && grep -qF -- "$_pat" "$T/err" || sed 's/^/# /' "$T/err"
}
gen() { "$E" keys gen "$@" >>"$T/gen.log" 2>&1; }

# keys: the coordinator's, an authorized worker and client, an intruder's
check "keys gen writes a coordinator pair" gen "$K/coord" --name coordinator
check "the pair is mode 600" [ "$(stat -c %a "$K/coord/coordinator.key")" = 600 ]
check "the public key is one Z85 line of 40 characters" \
    [ "$(wc -c <"$K/coord/coordinator.pub")" -eq 41 ]
gen "$K/w" --name worker && gen "$K/c" && gen "$K/x" --name worker && gen "$K/x" --name client
check "keys gen made the worker, client and intruder pairs" \
    test -f "$K/w/worker.key" -a -f "$K/c/client.key" -a -f "$K/x/worker.key" -a -f "$K/x/client.key"
cp "$K/w/worker.pub" "$K/coord/coordinator.pub" "$T/"
bad "keys gen does not overwrite" "already exists" "$E" keys gen "$K/w" --name worker
check "the worker's key is unchanged" cmp -s "$K/w/worker.pub" "$T/worker.pub"
mkdir "$K/coord/authorized"
cp "$K/w/worker.pub" "$K/coord/authorized/node-a.pub"
cp "$K/c/client.pub" "$K/coord/authorized/alice.pub"
for d in w c x; do cp "$K/coord/coordinator.pub" "$K/$d/"; done
"$E" keys gen --help >"$T/out"
check "keys gen --help describes the names" grep -q "authorized/" "$T/out"

# refused at start
bad "0.0.0.0 without --keys" "give --keys DIR" \
    "$BIN/encore-coordinator" --listen "tcp://0.0.0.0:$PORT" --state "$T/s0"
check "and nothing was created" test ! -e "$T/s0"
bad "a missing key directory" "cannot read key file '$T/none/coordinator.key'" \
    "$BIN/encore-coordinator" --listen "$EP" --state "$T/s1" --keys "$T/none"
mkdir -p "$T/trunc/authorized"
head -n 2 "$K/coord/coordinator.key" >"$T/trunc/coordinator.key"
chmod 600 "$T/trunc/coordinator.key"
bad "a truncated coordinator.key" "'$T/trunc/coordinator.key' has no secret key" \
    "$BIN/encore-coordinator" --listen "$EP" --state "$T/s1" --keys "$T/trunc"
cp "$K/coord/coordinator.key" "$T/trunc/"
head -c 30 "$K/w/worker.pub" >"$T/trunc/authorized/short.pub"
bad "a truncated authorized key" "short.pub': the public key is 30 characters, not 40" \
    "$BIN/encore-coordinator" --listen "$EP" --state "$T/s1" --keys "$T/trunc"
rm "$T/trunc/authorized/short.pub"
bad "no authorized directory" "'$T/trunc/authorized'" sh -c \
    "rmdir '$T/trunc/authorized' && exec '$BIN/encore-coordinator' --listen '$EP' --state '$T/s1' --keys '$T/trunc'"
bad "a worker without worker.key" "cannot read key file '$K/c/worker.key'" \
    "$BIN/encore-worker" --coordinator "$EP" --backend sim --keys "$K/c"
mkdir "$T/badpub" && cp "$K/c/client.key" "$T/badpub/" && printf 'not a key\n' >"$T/badpub/coordinator.pub"
bad "a client with a bad coordinator.pub" "coordinator.pub': the public key is 9 characters" \
    "$E" --keys "$T/badpub" --coordinator "$EP" status

# --insecure: allowed, with a warning (bound on all interfaces for a moment)
"$BIN/encore-coordinator" --listen "tcp://0.0.0.0:$PORT" --state "$T/s2" --insecure --no-fsync \
    >"$T/insecure.log" 2>&1 &
IPID=$!
PIDS="$PIDS $IPID"
i=0
while [ $i -lt 50 ] && ! "$E" --coordinator "$EP" status >/dev/null 2>&1; do
    sleep 0.1; i=$((i + 1))
done
check "--insecure serves a non-loopback endpoint" sh -c "'$E' --coordinator '$EP' status >/dev/null"
check "and warns about it" grep -q "no authentication or encryption (--insecure)" "$T/insecure.log"
kill -TERM "$IPID"; wait "$IPID" 2>/dev/null

# the farm with keys; ENCORE_KEYS gives farm-lib's client commands the client keys
export ENCORE_KEYS="$K/c"
start_coord --keys "$K/coord"
check "an authorized client talks to it (ENCORE_KEYS)" sh -c "'$E' --coordinator '$EP' status >/dev/null"
check "--keys does the same" sh -c "ENCORE_KEYS= '$E' --keys '$K/c' --coordinator '$EP' status >/dev/null"
check "the coordinator logs its key and the authorized count" \
    grep -q "CurveZMQ: public key .*, 2 peer key(s) authorized" "$T/coord.log"
start_keyed_worker() { # NAME KEYDIR
    "$BIN/encore-worker" --coordinator "$EP" --backend sim --sim-ms 3 --name "$1" --keys "$2" \
        >>"$T/worker-$1.log" 2>&1 &
    PIDS="$PIDS $!"
}
start_keyed_worker intruder "$K/x"
start_worker nokeys 3
id=$(submit)
check "job $id submitted" [ -n "$id" ]
i=0
while [ $i -lt 50 ] && ! grep -qF "key $(cat "$K/x/worker.pub") is not in" "$T/coord.log"; do
    sleep 0.1; i=$((i + 1))
done
check "the coordinator log names the refused worker's address and key" \
    grep -qF "refused a connection from '127.0.0.1': key $(cat "$K/x/worker.pub") is not in '$K/coord/authorized'" "$T/coord.log"
sleep 1
check "neither the intruder nor the keyless worker got a task" \
    [ "$(job_field "$id" tasks_done)" = 0 ]
check "neither is listed as a worker" sh -c "'$E' --coordinator '$EP' workers --json | grep -q '\"workers\":\[\]'"
start_keyed_worker a "$K/w"
check "job $id done with the authorized worker" wait_state "$id" done 60
check "latents byte-identical to render --local --backend sim (no keys)" same_as_reference "$id"
workers_json=$("$E" --coordinator "$EP" workers --json)
check "only worker a is listed" sh -c "echo '$workers_json' | grep -q '\"name\":\"a\"' && ! echo '$workers_json' | grep -q 'intruder\|nokeys'"
refusals=$(grep -c "refused a connection" "$T/coord.log")
check "the refusals are rate-limited ($refusals lines)" [ "$refusals" -le 3 ]

# clients that do not get in: a clear error at once, not a hang
start=$(date +%s)
bad "a client without keys" "requires CurveZMQ (give --keys DIR" \
    env ENCORE_KEYS= timeout 20 "$E" --coordinator "$EP" status
bad "a client with an unauthorized key" "refused this client's key" \
    env ENCORE_KEYS="$K/x" timeout 20 "$E" --coordinator "$EP" status
check "both within 5 s" [ $(($(date +%s) - start)) -le 5 ]
check "the coordinator is still serving" sh -c "'$E' --coordinator '$EP' status '$id' >/dev/null"
finish
