#!/usr/bin/env bash
# Paired data end to end on a generated fill-circles set (8x8 RGB, a tiny class config): a class-conditional base
# trained on its targets with its prompts as labels; a ControlNet beside it at np 2 equal to --simulate-ranks 2
# within 1e-5 (the same shards of the same cached decode); the prompt vocabulary carried in the weights, so that
# `sample --prompt` works and an unknown prompt is refused naming the closest known ones; `eval` picks the fill
# task by itself; and data with more prompts than the config has classes is refused giving both numbers.
source "$(dirname "$0")/lib.sh"
ensure_controlnet
training_env

scratch_dir
export CONTROLNET_CACHE_DIR=$TMP/cache

python3 -c 'import json,sys; json.dump({"image_size": 8, "in_channels": 3, "model_channels": 8, "channel_mult": [1, 2],
    "num_res_blocks": 1, "attention_levels": [1], "num_heads": 2, "norm_groups": 2, "num_classes": 64, "hint_channels": 3,
    "hint_block_channels": [4, 8]}, open(sys.argv[1], "w"))' "$TMP/tiny-fill.json"
python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); c["num_classes"]=8; json.dump(c, open(sys.argv[2], "w"))' \
    "$TMP/tiny-fill.json" "$TMP/tiny-fill8.json"
run_logged "$TMP/make.log" "make-dataset" "$CONTROLNET" make-dataset fill-circles --count 600 --size 8 --seed 3 --out "$TMP/fill"
run_logged "$TMP/make-test.log" "make-dataset (test)" "$CONTROLNET" make-dataset fill-circles --count 40 --size 8 --seed 4 --out "$TMP/fill-test"
run_logged "$TMP/base.log" "base training" "$CONTROLNET" train-base --config "$TMP/tiny-fill.json" --data "$TMP/fill" \
    --max-steps 20 --batch-size 16 --prompt-dropout 0.1 --out "$TMP/base"
grep -q "^data: fill, 600 training images, [0-9]* prompts as labels" "$TMP/base.log" || fail "the base run did not use the prompts as labels"
BASE=$TMP/base/unet.safetensors
python3 - "$BASE" <<'PY' || fail "the base weights carry no prompt vocabulary"
import json, struct, sys
raw = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
prompts = json.loads(json.loads(raw[8:8 + n])["__metadata__"]["prompts"])
assert len(prompts) > 20 and all(p.endswith(" background") for p in prompts), prompts
PY

TRAIN=(train-controlnet --config "$TMP/tiny-fill.json" --data "$TMP/fill" --base "$BASE" --max-steps 5 --batch-size 8
    --lr 1e-3 --log-every 1)
mpirun_for 2
run_logged "$TMP/np2.log" "np 2 paired training" "${MPIRUN[@]}" "$CONTROLNET" "${TRAIN[@]}" --out "$TMP/np2"
run_logged "$TMP/sim2.log" "--simulate-ranks 2 paired training" "$CONTROLNET" "${TRAIN[@]}" --simulate-ranks 2 --out "$TMP/sim2"
"$CONTROLNET" diff-weights "$TMP/np2/controlnet.safetensors" "$TMP/sim2/controlnet.safetensors" --tolerance 1e-5 \
    || fail "np 2 paired training differs from --simulate-ranks 2"
grep -q "^replica check: all 2 ranks hold bit-identical trainable weights" "$TMP/np2.log" || fail "no replica check"

# Sampling by prompt, and a refused unknown prompt.
run_logged "$TMP/sample.log" "sample --prompt" "$CONTROLNET" sample --base "$BASE" --control "$TMP/np2/controlnet.safetensors" \
    --hints-from test --data "$TMP/fill-test" --count 8 --steps 3 --prompt "red circle with blue background" --grid "$TMP/s.png"
python3 -c 'import sys; b=open(sys.argv[1],"rb").read(); assert b[:8]==b"\x89PNG\r\n\x1a\n" and b[25]==2, "not an RGB PNG"' "$TMP/s.png" \
    || fail "the sample grid is not an RGB PNG"
set +e
"$CONTROLNET" sample --base "$BASE" --count 2 --steps 2 --prompt "red circle with blu background" --grid "$TMP/x.png" >"$TMP/unknown.log" 2>&1
status=$?
set -e
[ "$status" -ne 0 ] && grep -q "unknown prompt 'red circle with blu background'; closest known: 'red circle with blue background'" "$TMP/unknown.log" \
    || { cat "$TMP/unknown.log"; fail "an unknown prompt was not refused with the closest known ones"; }

# eval picks the fill task from the prompts.
run_logged "$TMP/eval.log" "eval" "$CONTROLNET" eval --base "$BASE" --control "$TMP/np2/controlnet.safetensors" \
    --data "$TMP/fill-test" --count 16 --steps 3 --json "$TMP/eval.json"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); [r[k]["circle_iou"] for k in ("controlled","base_scale_0_floor","shuffled_hints_floor","real_images_ceiling")]; assert r["real_images_ceiling"]["circle_iou"]==1 and r["real_images_ceiling"]["fill_accuracy"]==1, r' "$TMP/eval.json" \
    || fail "the fill evaluation report is not complete, or its ceiling is not perfect"

# More prompts than classes.
set +e
"$CONTROLNET" train-base --config "$TMP/tiny-fill8.json" --data "$TMP/fill" --max-steps 2 --batch-size 8 --out "$TMP/few" >"$TMP/few.log" 2>&1
status=$?
set -e
[ "$status" -ne 0 ] && grep -qE "has [0-9]+ distinct prompts but config .* has num_classes 8" "$TMP/few.log" \
    || { cat "$TMP/few.log"; fail "more prompts than classes was not refused with both numbers"; }
echo "PASS $(basename "$0")"
