#!/usr/bin/env bash
# A resume that cannot continue the same training must be refused with an error naming the file at fault, and must
# change nothing under --out (every file's SHA-256 before == after): another model config, another base model,
# another seed, a missing shard, a shard whose bytes changed, a truncated shard. And `--resume latest` must skip a
# corrupted newest checkpoint, say so, and continue from the previous valid one - to the same final weights.
source "$(dirname "$0")/lib.sh"
ensure_controlnet
training_env

scratch_dir

base() {  # base NAME CONFIG SEED
    "$CONTROLNET" train-base --config "$2" --seed "$3" --resize --data-dir "$REPO_ROOT/data" --max-steps 30 \
        --batch-size 16 --out "$TMP/$1" >"$TMP/$1.log" 2>&1 || { cat "$TMP/$1.log"; fail "could not train base $1"; }
}
base base tiny 0
base other-base tiny 1
# Another config: tiny with twice the channels (a class config would refuse MNIST's ten labels first).
python3 -c 'import json,sys; json.dump({"image_size": 8, "in_channels": 1, "model_channels": 16, "channel_mult": [1, 2],
    "num_res_blocks": 1, "attention_levels": [1], "num_heads": 2, "norm_groups": 2, "num_classes": 0, "hint_channels": 1,
    "hint_block_channels": [4, 8]}, open(sys.argv[1], "w"))' "$TMP/tiny16.json"
base wide-base "$TMP/tiny16.json" 0
TRAIN=(train-controlnet --resize --data-dir "$REPO_ROOT/data" --batch-size 8 --lr 1e-3 --log-every 1 --max-steps 8)
TINY=(--config tiny --base "$TMP/base/unet.safetensors")
STEP4=checkpoints/step-00000004
STEP8=checkpoints/step-00000008

# A 1-rank run with checkpoints at steps 4 and 8, and a 2-rank run with one at step 4.
"$CONTROLNET" "${TRAIN[@]}" "${TINY[@]}" --checkpoint-every 4 --out "$TMP/run1" >"$TMP/run1.log" 2>&1 \
    || { cat "$TMP/run1.log"; fail "the 1-rank run failed"; }
mpirun_for 2
NP2=("${MPIRUN[@]}")
"${NP2[@]}" "$CONTROLNET" "${TRAIN[@]}" "${TINY[@]}" --max-steps 4 --checkpoint-every 4 --out "$TMP/run2" \
    >"$TMP/run2.log" 2>&1 || { cat "$TMP/run2.log"; fail "the 2-rank run failed"; }

snapshot() {  # every file under $1 with its SHA-256, and every directory
    # (run.lock excepted: it names whichever process last claimed the directory, refused ones included)
    (cd "$1" && find . -type d | LC_ALL=C sort && find . -type f ! -name run.lock -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
}

# flip_byte FILE OFFSET: inverts the bits of one byte in place.
flip_byte() {
    local value
    value=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
    printf "\\$(printf '%03o' $((value ^ 255)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# refused OUT EXPECTED-REGEX COMMAND...: COMMAND (given --out OUT) must fail with a message matching
# EXPECTED-REGEX, resume nothing, and leave OUT exactly as it was.
refused() {
    local out=$1 expected=$2 status before after
    shift 2
    before=$(snapshot "$out")
    set +e
    timeout -k 5 60 "$@" --out "$out" >"$out.refusal.log" 2>&1
    status=$?
    set -e
    echo "-- exit $status: $(grep -m1 'error: ' "$out.refusal.log" || echo '(no error line)')"
    [ "$status" -ne 0 ] || fail "accepted: $*"
    [ "$status" -ne 124 ] || fail "hung: $*"
    grep -qE -- "$expected" "$out.refusal.log" || { cat "$out.refusal.log"; fail "no error matching /$expected/"; }
    grep -q "^RESUMING from" "$out.refusal.log" && fail "it said it resumed although it was refused"
    after=$(snapshot "$out")
    [ "$before" = "$after" ] || { diff <(echo "$before") <(echo "$after") || true; fail "files under $out changed on a refusal"; }
    echo "   $(echo "$before" | grep -c '^[0-9a-f]\{64\} ') files under $out unchanged"
}

echo "== another model config (tiny16 run, tiny checkpoint)"
refused "$TMP/run1" "checkpoint $TMP/run1/$STEP4/manifest.json: was made with another model config" \
    "$CONTROLNET" "${TRAIN[@]}" --config "$TMP/tiny16.json" --base "$TMP/wide-base/unet.safetensors" --resume "$TMP/run1/$STEP4"
echo "== another base model"
refused "$TMP/run1" "checkpoint $TMP/run1/$STEP8/manifest.json: was trained on another base model" \
    "$CONTROLNET" "${TRAIN[@]}" --config tiny --base "$TMP/other-base/unet.safetensors" --resume latest
echo "== another seed"
refused "$TMP/run1" "checkpoint $TMP/run1/$STEP8/manifest.json: was made with --seed 0" \
    "$CONTROLNET" "${TRAIN[@]}" "${TINY[@]}" --seed 1 --resume latest

echo "== a missing shard (np 2 checkpoint, resumed at np 2)"
cp -a "$TMP/run2" "$TMP/missing"
rm "$TMP/missing/$STEP4/shard-00001-of-00002.safetensors"
refused "$TMP/missing" "checkpoint $TMP/missing/$STEP4/shard-00001-of-00002.safetensors: shard of rank 1 is missing" \
    "${NP2[@]}" "$CONTROLNET" "${TRAIN[@]}" "${TINY[@]}" --resume "$TMP/missing/$STEP4"

echo "== a flipped byte (np 2 checkpoint, resumed at np 1)"
cp -a "$TMP/run2" "$TMP/flipped"
shard=$TMP/flipped/$STEP4/shard-00000-of-00002.safetensors
flip_byte "$shard" $(($(stat -c %s "$shard") - 1000))
cmp -s "$shard" "$TMP/run2/$STEP4/shard-00000-of-00002.safetensors" && fail "flip_byte changed nothing"
refused "$TMP/flipped" "checkpoint $shard: SHA-256 mismatch \(corrupted\)" \
    "$CONTROLNET" "${TRAIN[@]}" "${TINY[@]}" --resume "$TMP/flipped/$STEP4"

echo "== a truncated shard"
cp -a "$TMP/run2" "$TMP/truncated"
shard=$TMP/truncated/$STEP4/shard-00001-of-00002.safetensors
size=$(stat -c %s "$shard")
truncate -s $((size - 7)) "$shard"
refused "$TMP/truncated" "checkpoint $shard: shard is $((size - 7)) bytes, the manifest says $size \(truncated or replaced\)" \
    "${NP2[@]}" "$CONTROLNET" "${TRAIN[@]}" "${TINY[@]}" --resume "$TMP/truncated/$STEP4"

echo "== --resume latest with a corrupted newest checkpoint falls back to the previous one"
cp -a "$TMP/run1" "$TMP/fallback"
shard=$TMP/fallback/$STEP8/shard-00000-of-00001.safetensors
flip_byte "$shard" $(($(stat -c %s "$shard") / 2))
"$CONTROLNET" "${TRAIN[@]}" "${TINY[@]}" --checkpoint-every 4 --resume latest --out "$TMP/fallback" \
    >"$TMP/fallback.log" 2>&1 || { cat "$TMP/fallback.log"; fail "resuming with a corrupted newest checkpoint failed"; }
grep "^resum" "$TMP/fallback.log"
grep -q "^resume: skipped invalid checkpoint: checkpoint $shard: SHA-256 mismatch" "$TMP/fallback.log" \
    || fail "the corrupted step-8 checkpoint was not named as skipped"
grep -q "^RESUMING from $TMP/fallback/$STEP4 at step 4 of" "$TMP/fallback.log" || fail "it did not resume from step 4"
cmp "$shard" "$TMP/run1/$STEP8/shard-00000-of-00001.safetensors" || fail "the rewritten step-8 shard differs"
"$CONTROLNET" diff-weights "$TMP/run1/controlnet.safetensors" "$TMP/fallback/controlnet.safetensors" | tee "$TMP/diff.json"
[ "$(jq .bit_identical "$TMP/diff.json")" = true ] || fail "the final weights after the fallback differ from the original run's"
echo "PASS $(basename "$0")"
