#!/usr/bin/env bash
# Ranks started with different options (mpirun's MPMD form) must not train a silent mix: the job is refused,
# naming the option that differs, for a per-rank --batch-size, --seed and --precision.
source "$(dirname "$0")/lib.sh"
ensure_controlnet
training_env

scratch_dir

train_tiny_base "$TMP/base"
BASE=$TMP/base/unet.safetensors
TRAIN=(train-controlnet --config tiny --resize --data-dir "$REPO_ROOT/data" --base "$BASE" --max-steps 3 --out "$TMP/run")
mpirun_for 1
ONE=("${MPIRUN[@]:3}")   # the shared flags without "mpirun -np 1"

mismatch() {  # mismatch NAME OPTION ARGS-RANK0 -- ARGS-RANK1
    local name=$1 option=$2 a=() b=() status
    shift 2
    while [ "$1" != "--" ]; do a+=("$1"); shift; done
    shift
    b=("$@")
    set +e
    timeout -k 5 60 mpirun "${ONE[@]}" -np 1 "$CONTROLNET" "${TRAIN[@]}" "${a[@]}" : -np 1 "$CONTROLNET" "${TRAIN[@]}" "${b[@]}" \
        >"$TMP/$name.log" 2>&1
    status=$?
    set -e
    grep -v "^$" "$TMP/$name.log" | grep -i "differs" | head -n 2
    [ "$status" -ne 0 ] && [ "$status" -ne 124 ] || fail "$name: mismatched ranks were accepted or hung (exit $status)"
    grep -q -- "$option: differs across the 2 ranks" "$TMP/$name.log" || { cat "$TMP/$name.log"; fail "$name: $option not named"; }
    rm -rf "$TMP/run"
}
mismatch batch --batch-size --batch-size 8 -- --batch-size 4
mismatch seed --seed --seed 1 -- --seed 2
mismatch precision --precision --precision fp32 -- --precision bf16
echo "PASS $(basename "$0")"
