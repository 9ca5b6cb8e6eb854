#!/bin/sh
# t4001: real jobs on the farm. A 10 s clip through the tiny model on an
# embedded farm (2 workers) and on daemons (a worker SIGKILLed mid-job)
# gives the latents of `render --local` byte for byte and the same decoded
# frames; the MP4 holds one H.264 stream at 25 fps with 4(L-1)+1 frames and
# one AAC stream of the same length. Bad inputs fail the job (or the submit)
# with a clear error naming the file and break nothing else. 60 s of audio
# through sim denoise + tiny-VAE decode + stitch gives the right frame count.
. "$(dirname "$0")/farm-lib.sh"
export ENCORE_CACHE="$T/cache"
E="$BIN/encore --coordinator $EP"
R="--steps 2 --size 64x64 --quiet"
"$BIN/encore" examples "$T" >/dev/null 2>&1
ffmpeg -v error -y -stream_loop 1 -i "$T/speech.wav" -t 10 -c:a pcm_s16le "$T/a10.wav"
A="$T/a10.wav" I="$T/portrait.png"

frames() { ffmpeg -v error -i "$1" -f rawvideo -pix_fmt rgb24 - | cksum; }
probe() { ffprobe -v error -select_streams "$2" -show_entries "stream=$3" -of csv=p=0 "$1"; }
mp4_ok() { # mp4_ok FILE FRAMES: one h264 stream, 25 fps, FRAMES frames, AAC of the same length
    [ "$(probe "$1" v codec_name)" = h264 ] && [ "$(probe "$1" v r_frame_rate)" = 25/1 ] &&
        [ "$(probe "$1" v nb_frames)" = "$2" ] && [ "$(probe "$1" a codec_name)" = aac ] &&
        [ "$(ffprobe -v error -show_entries stream=index -of csv=p=0 "$1" | wc -l)" = 2 ] &&
        awk -v v="$(probe "$1" v duration)" -v a="$(probe "$1" a duration)" \
            'BEGIN { d = v - a; if (d < 0) d = -d; exit !(d <= 0.04) }'
}

"$BIN/encore" render --local "$A" "$I" -o "$T/local.mp4" $R --save-latents "$T/local.st" \
    >/dev/null 2>"$T/local.err"
check "render --local of the 10 s clip" test -s "$T/local.st"

# 10 s: 250 video frames, L = 63 latents, 4(L-1)+1 = 249 frames.
"$BIN/encore" render "$A" "$I" -o "$T/emb.mp4" $R --workers 2 --save-latents "$T/emb.st" \
    >"$T/emb.out" 2>"$T/emb.err"
check "render (embedded farm, 2 workers) reports path, duration and frames" \
    grep -q "emb.mp4: 9.96 s, 249 frames at 25 fps" "$T/emb.out"
check "embedded farm: latents byte-identical to --local" cmp -s "$T/local.st" "$T/emb.st"
check "embedded farm: the same decoded frames as --local" \
    test "$(frames "$T/emb.mp4")" = "$(frames "$T/local.mp4")"
check "embedded farm: one H.264 stream, 25 fps, 249 frames, AAC of the same length" \
    mp4_ok "$T/emb.mp4" 249

start_coord --max-blob 1000000
start_engine_worker() {
    "$BIN/encore-worker" --coordinator "$EP" --tiny --threads 1 --name "$1" \
        >>"$T/worker-$1.log" 2>&1 &
    WPID=$!
    PIDS="$PIDS $WPID"
}

# Bad input first: each fails alone, the farm goes on.
printf 'not audio' >"$T/bad.wav"
bid=$($E submit "$T/bad.wav" "$I" $R)
check "audio that does not decode: the job fails, naming the file" sh -c \
    "[ \"\$($E status $bid --json | sed -n 's/.*\"state\":\"\([a-z]*\)\".*/\1/p')\" = failed ] &&
     $E status $bid --json | grep -q 'bad.wav'"
start_engine_worker a
start_engine_worker b
iid=$($E submit "$A" "$A" $R)
check "an image that does not decode fails the prepare task" wait_state "$iid" failed 60
check "... and the error names the file" sh -c "$E status $iid --json | grep -q \"prepare: image '.*a10.wav'\""
head -c 2000000 /dev/zero >"$T/big.wav"
$E submit "$T/big.wav" "$I" $R >/dev/null 2>"$T/big.err"; st=$?
check "a file over the blob limit is refused (exit 2, named)" sh -c \
    "[ $st -eq 2 ] && grep -q \"big.wav' is 2000000 bytes, over\" '$T/big.err'"

# A worker SIGKILLed during the job, then the coordinator SIGKILLed while
# chunks are being decoded and restarted: the result is still identical.
id=$($E submit "$A" "$I" $R)
wait_tasks "$id" 3 120
kill -9 "$WPID"
start_engine_worker c
wait_tasks "$id" 10 120 # 1 prepare + 8 denoise + 4 decode tasks in all
kill -9 "$CPID"; wait "$CPID" 2>/dev/null
start_coord --max-blob 1000000
check "job with a worker killed and the coordinator restarted finishes" wait_state "$id" done 180
$E get "$id" -o "$T/d.mp4" --latents "$T/d.st"
check "killed worker: latents byte-identical to --local" cmp -s "$T/local.st" "$T/d.st"
check "killed worker: the same decoded frames" test "$(frames "$T/d.mp4")" = "$(frames "$T/local.mp4")"
check "killed worker: a valid MP4" mp4_ok "$T/d.mp4" 249
check "the failed jobs stayed failed" test "$(job_field "$iid" state)" = failed
check "status reports the decoded chunks" sh -c "$E status $id --json | grep -q '\"segments\":4,\"segments_done\":4'"

# 60 s through sim denoise, real tiny-VAE decode and stitch (1500 video
# frames of sound: L = 375, 4(L-1)+1 = 1497 frames).
ffmpeg -v error -y -stream_loop 11 -i "$T/speech.wav" -t 60 -c:a pcm_s16le "$T/a60.wav"
"$BIN/encore" render "$T/a60.wav" "$I" --backend sim -o "$T/sim.mp4" --steps 2 --size 32x32 \
    --workers 2 --quiet >"$T/sim.out" 2>"$T/sim.err"
check "60 s sim render: 1497 frames, 59.88 s" grep -q "sim.mp4: 59.88 s, 1497 frames" "$T/sim.out"
check "60 s sim render: a valid MP4 of 1497 frames" mp4_ok "$T/sim.mp4" 1497
finish
