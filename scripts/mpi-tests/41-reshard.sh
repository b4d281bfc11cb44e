#!/usr/bin/env bash
# Resuming at ANOTHER world size (2->1, 1->2, 2->4) must continue the same training, not restart it: base-model
# training from scratch (whose loss falls fast) checkpoints at step 20; each resumed run's first loss must be close to
# the source run's own loss at that step (within 35%: the batches differ with the world size) and far below the
# from-scratch loss of step 1 (< 0.8x). With the global batch kept (2 ranks x 8 -> 1 rank x 16) the batches are the
# same samples and noise, so the first resumed loss must match the source run's to float rounding (1e-4 relative).
source "$(dirname "$0")/lib.sh"
ensure_controlnet
training_env

scratch_dir

TRAIN=(train-base --config tiny --resize --data-dir "$REPO_ROOT/data" --lr 2e-3 --log-every 1 --max-steps 30)
CHECKPOINT=checkpoints/step-00000020

# loss_at OUT STEP
loss_at() {
    jq -r --argjson s "$2" 'select(.step == $s) | .loss' "$1/metrics.jsonl"
}

# source_run NAME NP: from-scratch training to step 30 with a checkpoint at step 20.
source_run() {
    mpirun_for "$2"
    run_logged "$TMP/$1.log" "source run $1 (np $2)" \
        "${MPIRUN[@]}" "$CONTROLNET" "${TRAIN[@]}" --batch-size 8 --checkpoint-every 20 --out "$TMP/$1"
    [ -f "$TMP/$1/$CHECKPOINT/manifest.json" ] || fail "source run $1 wrote no step-20 checkpoint"
}

# resumed FROM NP BATCH MAX_RATIO: resumes FROM's step-20 checkpoint at NP ranks of BATCH samples for 10 steps and
# checks the loss continuity: |first resumed loss / source loss at step 21 - 1| <= MAX_RATIO.
resumed() {
    local from=$1 np=$2 batch=$3 max_ratio=$4 out world_from
    out=$TMP/$from-to-np$np-b$batch
    world_from=$(jq .world_size "$TMP/$from/$CHECKPOINT/manifest.json")
    mpirun_for "$np"
    run_logged "$out.log" "resuming $from at np $np" \
        "${MPIRUN[@]}" "$CONTROLNET" "${TRAIN[@]}" --batch-size "$batch" --out "$out" --resume "$TMP/$from/$CHECKPOINT"
    local line
    line=$(grep "^RESUMING from" "$out.log") || fail "no 'RESUMING from' line"
    if [ "$world_from" != "$np" ]; then
        [[ "$line" == *"at step 20 of "*"(resharded from $world_from to $np ranks)" ]] || fail "unexpected resume line: $line"
    fi
    local first scratch source
    first=$(loss_at "$out" 21)
    source=$(loss_at "$TMP/$from" 21)
    scratch=$(loss_at "$TMP/$from" 1)
    [ -n "$first" ] && [ -n "$source" ] && [ -n "$scratch" ] || fail "missing loss records (21: '$first', '$source'; 1: '$scratch')"
    [ "$(jq -s 'map(.step) | min' "$out/metrics.jsonl")" = 21 ] || fail "the resumed run did not start at step 21"
    [ "$(jq -s 'map(.step) | max' "$out/metrics.jsonl")" = 30 ] || fail "the resumed run did not reach step 30"
    printf '%-26s step-1 loss %.4f | step 21: source (np %s) %.4f, resumed %.4f (ratio %.4f) | mean 21-30: source %.4f, resumed %.4f\n' \
        "np $world_from -> np $np x $batch:" "$scratch" "$world_from" "$source" "$first" "$(echo "$first / $source" | bc -l)" \
        "$(jq -s 'map(select(.step > 20) | .loss) | add / length' "$TMP/$from/metrics.jsonl")" \
        "$(jq -s 'map(.loss) | add / length' "$out/metrics.jsonl")"
    (( $(echo "d = $first / $source - 1; if (d < 0) d = -d; d <= $max_ratio" | bc -l) )) \
        || fail "np $world_from -> np $np: resumed loss $first is not within $max_ratio of the source run's $source"
    (( $(echo "$first < 0.8 * $scratch" | bc -l) )) \
        || fail "np $world_from -> np $np: resumed loss $first is not far below the from-scratch loss $scratch (a restart?)"
}

source_run np2 2
source_run np1 1
resumed np2 1 8 0.35
resumed np1 2 8 0.35
resumed np2 4 8 0.35
resumed np2 1 16 0.0001
echo "PASS $(basename "$0")"
