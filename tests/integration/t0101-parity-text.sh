#!/bin/sh
# The text side through the CLI: `encore parity` passes on the tokenizer and
# umT5 fixtures, and a bad tokenizer model or a checkpoint without the
# encoder fails with a message naming the file, not a crash.
set -u
bin=${ENCORE_BIN:-build/bin}
fx=../shared/fixtures/stableavatar
tmp=$(mktemp -d "${TMPDIR:-/tmp}/t0101.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "1..6"

check() { # n description command...
    n=$1 desc=$2
    shift 2
    if out=$("$@" 2>&1); then
        echo "ok $n - $desc"
    else
        echo "not ok $n - $desc"
        echo "$out" | sed 's/^/# /'
    fi
}
check 1 "parity tokenizer" "$bin/encore" parity "$fx/tokenizer.safetensors"
check 2 "parity umt5_encoder" "$bin/encore" parity "$fx/umt5_encoder.safetensors"

printf 'not a model' >"$tmp/garbage.model"
"$bin/encore" parity --weights "$tmp/garbage.model" "$fx/tokenizer.safetensors" >"$tmp/out" 2>&1
rc=$?
if [ "$rc" -eq 1 ]; then echo "ok 3 - a garbage model fails (exit 1)"; else echo "not ok 3 - exit $rc"; fi
if grep -q "garbage.model': not a SentencePiece model" "$tmp/out"; then
    echo "ok 4 - the message names the model file"
else
    echo "not ok 4 - no clear message"
    sed 's/^/# /' "$tmp/out"
fi

"$bin/encore" parity --weights "$fx/tokenizer.safetensors" "$fx/umt5_encoder.safetensors" \
    >"$tmp/out" 2>&1
rc=$?
if [ "$rc" -eq 1 ]; then echo "ok 5 - umt5 weights from a wrong checkpoint fail (exit 1)"; else echo "not ok 5 - exit $rc"; fi
if grep -q "no 'token_embedding.weight'" "$tmp/out"; then
    echo "ok 6 - the message names the missing tensor"
else
    echo "not ok 6 - no clear message"
    sed 's/^/# /' "$tmp/out"
fi
