#!/usr/bin/env bash
# Bad command lines must be refused up front with a message that names the option (or file) at fault, a non-zero
# exit, and no trace in --out: a typo may not leave a half-made run directory behind.
source "$(dirname "$0")/lib.sh"
ensure_controlnet
training_env

scratch_dir

train_tiny_base "$TMP/base"
BASE=$TMP/base/unet.safetensors
COMMON=(--config tiny --resize --data-dir "$REPO_ROOT/data" --max-steps 5 --batch-size 8)
case_number=0

# refused EXPECTED-REGEX ARGS...: runs controlnet ARGS with a fresh --out, expects a non-zero exit, output matching
# EXPECTED-REGEX, and no --out directory afterwards.
refused() {
    local expected=$1
    shift
    case_number=$((case_number + 1))
    local out=$TMP/out-$case_number log=$TMP/case-$case_number.log status start elapsed
    start=$(now_seconds)
    set +e
    timeout -k 5 60 "$@" --out "$out" >"$log" 2>&1
    status=$?
    set -e
    elapsed=$(echo "$(now_seconds) - $start" | bc)
    echo "-- ${*#"$CONTROLNET"} -> exit $status in $elapsed s:"
    grep -v '^$' "$log" | head -n 3 | sed 's/^/   /'
    [ "$status" -ne 0 ] || fail "accepted: $*"
    [ "$status" -ne 124 ] || fail "hung: $*"
    grep -qE -- "$expected" "$log" || fail "the message for '$*' does not match /$expected/"
    [ ! -e "$out" ] || fail "'$*' left $(find "$out" | tr '\n' ' ') behind"
}

refused "--epochs: give --epochs or --max-steps, not both" \
    "$CONTROLNET" train-controlnet "${COMMON[@]}" --base "$BASE" --epochs 1
refused "--prompt-dropout: needs a class-conditional config" \
    "$CONTROLNET" train-controlnet "${COMMON[@]}" --base "$BASE" --prompt-dropout 0.1
refused "Missing expected argument '--base <base>'" \
    "$CONTROLNET" train-controlnet "${COMMON[@]}"
refused "--batch-size: must be at least 1, got 0" \
    "$CONTROLNET" train-controlnet --config tiny --resize --data-dir "$REPO_ROOT/data" --max-steps 5 --batch-size 0 --base "$BASE"
refused "--lr: must be a positive number, got -0.001" \
    "$CONTROLNET" train-base "${COMMON[@]}" --lr=-1e-3
refused "--inject-nonfinite: 'x' is not STEP or STEP:RANK" \
    "$CONTROLNET" train-base "${COMMON[@]}" --inject-nonfinite x
refused "'tiny-huge' is neither a preset" \
    "$CONTROLNET" train-base --config tiny-huge --resize --data-dir "$REPO_ROOT/data" --max-steps 5
# An instruction set the kernels do not have (or this CPU cannot run) stops the program before any work.
refused "CONTROLNET_KERNEL_ISA=sse9: unknown instruction set; use one of .*generic" \
    env CONTROLNET_KERNEL_ISA=sse9 "$CONTROLNET" train-controlnet "${COMMON[@]}" --base "$BASE"
mpirun_for 2
refused "--simulate-ranks is the single-process debug mode; under mpirun use real ranks" \
    "${MPIRUN[@]}" "$CONTROLNET" train-controlnet "${COMMON[@]}" --base "$BASE" --simulate-ranks 2
# Each rank reports in a single write, so mpirun cannot splice one rank's message into another's, and only rank 0
# adds the usage text (an interleaved "...single-process deError: --sibmulate-ranks..." once failed CI here).
mpi_log=$TMP/case-$case_number.log
bad_lines=$(grep -E 'simulate-ranks|Error' "$mpi_log" | grep -vxE '(Error|rank 1): --simulate-ranks is the single-process debug mode; under mpirun use real ranks' || true)
[ -z "$bad_lines" ] || fail "a rank's report was spliced or altered under mpirun: $bad_lines"
[ "$(grep -c '^Usage:' "$mpi_log")" -le 1 ] || fail "the usage text came from more than one rank: $(cat "$mpi_log")"
# Numbers that are not finite or are absurdly large are refused, naming the option (they used to crash or hang).
refused "--weight-decay: must be a finite number, got nan" \
    "$CONTROLNET" train-controlnet "${COMMON[@]}" --base "$BASE" --weight-decay nan
refused "--max-grad-norm: must be a finite number, got nan" \
    "$CONTROLNET" train-controlnet "${COMMON[@]}" --base "$BASE" --max-grad-norm nan
refused "--lr: must be a finite number, got inf" \
    "$CONTROLNET" train-controlnet "${COMMON[@]}" --base "$BASE" --lr inf
refused "--lr: must be at most 10.0, got 1e\\+300" \
    "$CONTROLNET" train-controlnet "${COMMON[@]}" --base "$BASE" --lr 1e300
refused "--weight-decay: must be at most 100.0, got 1e\\+300" \
    "$CONTROLNET" train-base "${COMMON[@]}" --weight-decay 1e300
# Each in bounds, but AdamW's decoupled decay would multiply the weights by 1 - lr x wd <= 0 every step.
refused "--weight-decay: with --lr 1.0, 2.0 makes the per-step decay factor" \
    "$CONTROLNET" train-base "${COMMON[@]}" --lr 1 --weight-decay 2
refused "--grad-accum: must be at most 4096, got 1000000000" \
    "$CONTROLNET" train-controlnet "${COMMON[@]}" --base "$BASE" --grad-accum 1000000000
refused "--validation-count: must be at most 10000" \
    "$CONTROLNET" train-controlnet "${COMMON[@]}" --base "$BASE" --validation-count 99999999
# Configs: an unknown key, and sizes no machine holds, are refused naming the field before anything is allocated.
python3 - "$TMP" <<'PY'
import json, sys
tiny = {"image_size": 8, "in_channels": 1, "model_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1,
        "attention_levels": [1], "num_heads": 2, "norm_groups": 2, "num_classes": 0, "hint_channels": 1,
        "hint_block_channels": [4, 8]}
for name, edit in [("dropout", {"dropout": 0.5}), ("blocks", {"num_res_blocks": 1000000000}),
                   ("classes", {"num_classes": 1000000000000}), ("wide", {"image_size": 256, "model_channels": 4096,
                   "channel_mult": [1, 2, 4, 8], "norm_groups": 32, "num_heads": 32})]:
    json.dump({**tiny, **edit}, open(f"{sys.argv[1]}/{name}.json", "w"))
PY
refused "config field 'dropout': unknown key .* the known keys are attention_levels" \
    "$CONTROLNET" train-base --config "$TMP/dropout.json" --resize --data-dir "$REPO_ROOT/data" --max-steps 5
refused "config field 'num_res_blocks': 1000000000 is above the supported maximum 16" \
    "$CONTROLNET" train-base --config "$TMP/blocks.json" --resize --data-dir "$REPO_ROOT/data" --max-steps 5
refused "config field 'num_classes': 1000000000000 is above the supported maximum" \
    "$CONTROLNET" train-base --config "$TMP/classes.json" --resize --data-dir "$REPO_ROOT/data" --max-steps 5
refused "--config: .*wide.json has .* parameters, which need about .* GB" \
    "$CONTROLNET" train-base --config "$TMP/wide.json" --resize --data-dir "$REPO_ROOT/data" --max-steps 5
refused "--batch-size: 65536 samples per step need about .* GB of activations" \
    "$CONTROLNET" train-base --config mnist --data-dir "$REPO_ROOT/data" --max-steps 5 --batch-size 65536
# A base with one NaN weight is refused naming the tensor (it used to train 2 steps and exit 0).
python3 - "$BASE" "$TMP/nan-base.safetensors" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
start = header["middle.0.conv1.weight"]["data_offsets"][0] + 8 + n
data = bytearray(raw)
data[start + 12:start + 16] = struct.pack("<f", float("nan"))
open(sys.argv[2], "wb").write(data)
PY
refused "tensor middle.0.conv1.weight holds a non-finite value \(nan at element 3\)" \
    "$CONTROLNET" train-controlnet "${COMMON[@]}" --base "$TMP/nan-base.safetensors"
# A class config on data whose labels it cannot take.
refused "--data: .*has label [0-9]+ \(labels go up to 9\).*num_classes 3" \
    "$CONTROLNET" train-base --config tiny-class --resize --data-dir "$REPO_ROOT/data" --max-steps 5 --batch-size 8
# A file, not a combination: the message must name the missing path.
refused "--base: .*$TMP/no-such-base.safetensors" \
    "$CONTROLNET" train-controlnet "${COMMON[@]}" --base "$TMP/no-such-base.safetensors"
echo "PASS $(basename "$0") ($case_number refusals)"
