#!/bin/sh
# End to end in one process: the demo inputs through the tiny model into an
# MP4 with one H.264 stream of 4(L-1)+1 frames at 25 fps and one AAC stream
# of the same length; the same latents whatever the thread count; bad inputs
# refused with exit 2 and no output.
set -u
bin=${ENCORE_BIN:-build/bin}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
export ENCORE_CACHE="$tmp/cache"
echo "1..12"
n=0
check() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }

"$bin/encore" render --local examples/speech.wav examples/portrait.png -o "$tmp/a.mp4" --steps 3 \
    --threads 1 --save-latents "$tmp/a.st" --quiet >"$tmp/out.txt" 2>"$tmp/err.txt"
check $? "render with the tiny model"
grep -q "a.mp4: 5.00 s, 125 frames at 25 fps" "$tmp/out.txt"
check $? "it reports path, duration and frame count"
probe() { ffprobe -v error -select_streams "$1" -show_entries "stream=$2" -of csv=p=0 "$tmp/a.mp4"; }
[ "$(probe v codec_name)" = h264 ] && [ "$(probe v r_frame_rate)" = 25/1 ] && \
    [ "$(probe v nb_frames)" = 125 ]
check $? "one H.264 stream, 25 fps, 125 frames (5 s of audio: L = 32)"
[ "$(probe a codec_name)" = aac ] && [ "$(ffprobe -v error -select_streams v -show_entries stream -of csv=p=0 "$tmp/a.mp4" | wc -l)" = 1 ]
check $? "one AAC stream"
vd=$(probe v duration); ad=$(probe a duration)
awk -v v="$vd" -v a="$ad" 'BEGIN { d = v - a; if (d < 0) d = -d; exit !(d <= 0.04) }'
check $? "audio length $ad s matches video $vd s within one frame"

"$bin/encore" render --local examples/speech.wav examples/portrait.png -o "$tmp/b.mp4" --steps 3 \
    --threads 2 --save-latents "$tmp/b.st" --quiet >/dev/null 2>&1
cmp -s "$tmp/a.st" "$tmp/b.st"
check $? "1 and 2 threads give byte-identical latents"
"$bin/encore" render --local examples/speech.wav examples/portrait.png -o "$tmp/c.mp4" --steps 3 \
    --seed 7 --save-latents "$tmp/c.st" --quiet >/dev/null 2>&1
! cmp -s "$tmp/a.st" "$tmp/c.st"
check $? "another seed gives other latents"

printf 'not audio' >"$tmp/bad.wav"
"$bin/encore" render --local "$tmp/bad.wav" examples/portrait.png -o "$tmp/x.mp4" --quiet 2>"$tmp/e1"
[ $? = 2 ] && grep -q "bad.wav" "$tmp/e1" && [ ! -e "$tmp/x.mp4" ]
check $? "a file that is not audio: exit 2, named, no output"
"$bin/encore" render --local examples/speech.wav examples/speech.wav -o "$tmp/x.mp4" --quiet 2>"$tmp/e2"
[ $? = 2 ] && grep -q "speech.wav" "$tmp/e2" && [ ! -e "$tmp/x.mp4" ]
check $? "a file that is not an image: exit 2, named, no output"
: >"$tmp/empty.wav"
"$bin/encore" render --local "$tmp/empty.wav" examples/portrait.png -o "$tmp/x.mp4" --quiet 2>/dev/null
[ $? = 2 ] && [ ! -e "$tmp/x.mp4" ]
check $? "an empty audio file: exit 2, no output"
"$bin/encore" render --local examples/speech.wav examples/portrait.png -o "$tmp/x.mp4" --steps 0 2>/dev/null
[ $? = 2 ] && [ ! -e "$tmp/x.mp4" ]
check $? "steps 0: exit 2"
"$bin/encore" render --local examples/speech.wav examples/portrait.png -o "$tmp/x.mp4" --blend cubic 2>/dev/null
[ $? = 2 ] && [ ! -e "$tmp/x.mp4" ]
check $? "unknown blend scheme: exit 2"
