#!/bin/sh
# Every public fixture of a kind this build supports passes `encore parity`;
# the DiT also passes with its weights from the .pt file torch.save wrote.
set -u
bin=${ENCORE_BIN:-build/bin}
fx=../shared/fixtures/stableavatar
kinds="dit_forward scheduler sliding_window_loop vae_decode vae_encode umt5_encoder tokenizer clip_vision wav2vec2"
n=0
for k in $kinds; do n=$((n + 1)); done
echo "1..$((n + 2))"
i=0
for k in $kinds; do
    i=$((i + 1))
    if out=$("$bin/encore" parity "$fx/$k.safetensors" 2>&1); then
        echo "ok $i - parity $k"
    else
        echo "not ok $i - parity $k"
        echo "$out" | sed 's/^/# /'
    fi
done
i=$((i + 1))
if out=$("$bin/encore" parity --weights "$fx/dit_weights.pt" "$fx/dit_forward.safetensors" 2>&1); then
    echo "ok $i - parity dit_forward with weights from dit_weights.pt"
else
    echo "not ok $i - parity dit_forward with weights from dit_weights.pt"
    echo "$out" | sed 's/^/# /'
fi
i=$((i + 1))
"$bin/encore" parity "$fx/README.md" >/dev/null 2>&1
rc=$?
if [ "$rc" -eq 2 ]; then echo "ok $i - a file that is not a fixture exits 2"; else echo "not ok $i - non-fixture exit status $rc"; fi
