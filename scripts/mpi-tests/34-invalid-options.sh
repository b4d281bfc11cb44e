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
refused "--batch-size: must be at least 1 \(per rank\), got 0" \
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
# A file, not a combination: the message must name the missing path.
refused "--base: .*$TMP/no-such-base.safetensors" \
    "$CONTROLNET" train-controlnet "${COMMON[@]}" --base "$TMP/no-such-base.safetensors"
echo "PASS $(basename "$0") ($case_number refusals)"
