#!/usr/bin/env bash
# Ranks started with different options (mpirun's MPMD form) must not train a silent mix: the job is refused,
# naming the option that differs (a per-rank --batch-size, --seed or --precision, an option given to one rank
# only); so are sample and eval ranks (each writes its share of one job's images); ranks started with different
# subcommands are refused naming both.
source "$(dirname "$0")/lib.sh"
ensure_controlnet
training_env

scratch_dir

train_tiny_base "$TMP/base"
BASE=$TMP/base/unet.safetensors
TRAIN=(train-controlnet --config tiny --resize --data-dir "$REPO_ROOT/data" --base "$BASE" --max-steps 3 --out "$TMP/run")
mpirun_for 1
ONE=("${MPIRUN[@]:3}")   # the shared flags without "mpirun -np 1"

# mpmd_refused NAME EXPECTED ARGS-RANK0 -- ARGS-RANK1: the two-rank MPMD job is refused (not hung) with a message
# matching EXPECTED, and writes no grid $TMP/NAME.png.
mpmd_refused() {
    local name=$1 expected=$2 a=() b=() status
    shift 2
    while [ "$1" != "--" ]; do a+=("$1"); shift; done
    shift
    b=("$@")
    set +e
    timeout -k 5 60 mpirun "${ONE[@]}" -np 1 "$CONTROLNET" "${a[@]}" : -np 1 "$CONTROLNET" "${b[@]}" >"$TMP/$name.log" 2>&1
    status=$?
    set -e
    grep -v "^$" "$TMP/$name.log" | grep -i "differs" | head -n 2
    [ "$status" -ne 0 ] && [ "$status" -ne 124 ] || { cat "$TMP/$name.log"; fail "$name: mismatched ranks were accepted or hung (exit $status)"; }
    grep -q -- "$expected" "$TMP/$name.log" || { cat "$TMP/$name.log"; fail "$name: /$expected/ not in the message"; }
    [ ! -e "$TMP/$name.png" ] || fail "$name: the mismatched job wrote its grid"
}

mismatch() {  # mismatch NAME OPTION ARGS-RANK0 -- ARGS-RANK1 (training options after TRAIN's)
    local name=$1 option=$2 a=()
    shift 2
    while [ "$1" != "--" ]; do a+=("$1"); shift; done
    shift
    mpmd_refused "$name" "$option: differs across the 2 ranks" "${TRAIN[@]}" "${a[@]}" -- "${TRAIN[@]}" "$@"
    rm -rf "$TMP/run"
}
mismatch batch --batch-size --batch-size 8 -- --batch-size 4
mismatch seed --seed --seed 1 -- --seed 2
mismatch precision --precision --precision fp32 -- --precision bf16
# An option given on one rank only: its key used to be absent from the other rank's list, so the ranks reduced
# arrays of different lengths (a hang). Every key is compared, absent ones as null.
mismatch hint-one-rank --hint --hint canny --
mismatch ema-one-rank --ema-decay --ema-decay 0.99 --

# sample and eval: ranks with another --precision or --seed would write a mix of two jobs' images.
SAMPLE=(sample --base "$BASE" --count 4 --steps 1 --batch-size 2 --grid "$TMP/sample-precision.png")
mpmd_refused sample-precision "--precision: differs across the 2 ranks" \
    "${SAMPLE[@]}" --precision fp32 -- "${SAMPLE[@]}" --precision bf16
# --threads is each node's own (the images do not depend on it): ranks may differ there.
SAMPLE[${#SAMPLE[@]}-1]=$TMP/sample-threads.png
timeout -k 5 60 mpirun "${ONE[@]}" -np 1 "$CONTROLNET" "${SAMPLE[@]}" --threads 1 : -np 1 "$CONTROLNET" "${SAMPLE[@]}" \
    --threads 2 >"$TMP/sample-threads.log" 2>&1 || { cat "$TMP/sample-threads.log"; fail "ranks with their own --threads were refused"; }
[ -s "$TMP/sample-threads.png" ] || fail "sample with per-rank --threads wrote no grid"
SAMPLE[${#SAMPLE[@]}-1]=$TMP/sample-seed.png
mpmd_refused sample-seed "the set of options given .*differs across the 2 ranks" "${SAMPLE[@]}" -- "${SAMPLE[@]}" --seed 7
"$CONTROLNET" train-controlnet --config tiny --resize --data-dir "$REPO_ROOT/data" --base "$BASE" --max-steps 1 \
    --batch-size 4 --out "$TMP/cn" >"$TMP/cn.log" 2>&1 || { cat "$TMP/cn.log"; fail "training the ControlNet failed"; }
EVAL=(eval --base "$BASE" --control "$TMP/cn/controlnet.safetensors" --data-dir "$REPO_ROOT/data" --count 2 --steps 1
      --grid "$TMP/eval-count.png")
mpmd_refused eval-count "--count: differs across the 2 ranks" "${EVAL[@]}" -- "${EVAL[@]}" --count 3

# Ranks started with different subcommands wait in collectives the others never call: refused when the
# communicator is made, naming both commands, within the timeout.
set +e
timeout -k 5 60 mpirun "${ONE[@]}" -np 1 "$CONTROLNET" "${TRAIN[@]}" : -np 1 "$CONTROLNET" sample --base "$BASE" \
    --count 2 --steps 1 --grid "$TMP/mpmd.png" >"$TMP/mpmd.log" 2>&1
status=$?
set -e
grep -i "different subcommands" "$TMP/mpmd.log" | head -n 2
[ "$status" -ne 0 ] && [ "$status" -ne 124 ] || { cat "$TMP/mpmd.log"; fail "MPMD train-controlnet : sample was accepted or hung (exit $status)"; }
grep -q "rank 0 runs 'train-controlnet', this rank runs 'sample'" "$TMP/mpmd.log" || { cat "$TMP/mpmd.log"; fail "MPMD: the commands are not named"; }
[ ! -e "$TMP/mpmd.png" ] || fail "MPMD: sample wrote its grid"
echo "PASS $(basename "$0")"
