#!/usr/bin/env bash
# Resuming at the same world size must continue EXACTLY: the run after a resume writes the same bytes as the run
# that never stopped. (1) at np 1 and np 2: resume 8-step training from a copy of its step-4 checkpoint and compare
# the step-8 shards byte for byte, the final weights bit for bit, and the logged losses of steps 5-8. (2) A real stop:
# SIGTERM to a running 1-rank job must checkpoint and exit 0, and resuming it must end bit-identical to a run that
# was never interrupted. (3) The same with SIGUSR1 sent to mpirun at np 2 (mpirun forwards USR1 to the ranks).
source "$(dirname "$0")/lib.sh"
ensure_controlnet
training_env

TMP=$(mktemp -d)
job=
cleanup() {
    if [ -n "$job" ] && kill -0 "$job" 2>/dev/null; then kill -KILL "$job" 2>/dev/null || true; fi
    for pid in $(pgrep -f -- "--out $TMP/" || true); do kill -KILL "$pid" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

train_tiny_base "$TMP/base"
TRAIN=(train-controlnet --config tiny --resize --data-dir "$REPO_ROOT/data" --base "$TMP/base/unet.safetensors"
    --batch-size 8 --lr 1e-3 --log-every 1)

# same_run A B STEP WORLD: B's step-STEP shards equal A's byte for byte, and so do the final weights.
same_run() {
    local a=$1 b=$2 step dir world=$4 r shard
    dir=checkpoints/$(printf 'step-%08d' "$3")
    for ((r = 0; r < world; r++)); do
        shard=$(printf 'shard-%05d-of-%05d.safetensors' "$r" "$world")
        [ -f "$b/$dir/$shard" ] || fail "$b/$dir/$shard is missing"
        cmp "$a/$dir/$shard" "$b/$dir/$shard" || fail "$dir/$shard differs between $a and $b"
    done
    echo "$dir: all $world shard(s) byte-identical"
    "$CONTROLNET" diff-weights "$a/controlnet.safetensors" "$b/controlnet.safetensors" | tee "$TMP/diff.json"
    [ "$(jq .bit_identical "$TMP/diff.json")" = true ] || fail "final weights of $a and $b are not bit-identical"
}

# losses OUT FIRST LAST: "step loss" lines of OUT's metrics for those steps.
losses() {
    jq -r --argjson lo "$2" --argjson hi "$3" 'select(.step >= $lo and .step <= $hi) | "\(.step) \(.loss)"' "$1/metrics.jsonl"
}

for np in 1 2; do
    echo "== resume from a copied step-4 checkpoint at np $np"
    mpirun_for "$np"
    run=("${MPIRUN[@]}" "$CONTROLNET" "${TRAIN[@]}" --max-steps 8 --checkpoint-every 4)
    run_logged "$TMP/a$np.log" "run A" "${run[@]}" --out "$TMP/a$np"
    mkdir -p "$TMP/b$np/checkpoints"
    cp -a "$TMP/a$np/checkpoints/step-00000004" "$TMP/b$np/checkpoints/"
    run_logged "$TMP/b$np.log" "run B (resumed)" "${run[@]}" --out "$TMP/b$np" --resume latest
    grep "^RESUMING from" "$TMP/b$np.log"
    grep -qE "^RESUMING from $TMP/b$np/checkpoints/step-00000004 at step 4 of [0-9]+, epoch 0$" "$TMP/b$np.log" \
        || fail "run B did not say it resumed from its step-4 checkpoint"
    same_run "$TMP/a$np" "$TMP/b$np" 8 "$np"
    [ "$(losses "$TMP/b$np" 1 8)" = "$(losses "$TMP/a$np" 5 8)" ] \
        || fail "the losses of steps 5-8 differ: $(losses "$TMP/a$np" 5 8 | tr '\n' ' ') vs $(losses "$TMP/b$np" 1 8 | tr '\n' ' ')"
    echo "losses of steps 5-8 equal: $(losses "$TMP/b$np" 5 8 | tr '\n' ' ')"
done

# stop_and_resume NAME SIGNAL NP STEPS: starts STEPS steps in the background, sends SIGNAL (to the process at np 1,
# to mpirun at np 2) after a few steps, expects exit 0 with a stop checkpoint, then resumes to step STEPS.
stop_and_resume() {
    local name=$1 signal=$2 np=$3 steps=$4 out=$TMP/$1 status step records
    mpirun_for "$np"
    local run=("$CONTROLNET" "${TRAIN[@]}" --max-steps "$steps" --checkpoint-every 1000)
    [ "$np" = 1 ] || run=("${MPIRUN[@]}" "${run[@]}")
    echo "== SIG$signal after a few steps at np $np, then --resume latest"
    run_logged "$TMP/full-$name.log" "the uninterrupted $steps-step run" "${run[@]}" --out "$TMP/full-$name"
    "${run[@]}" --out "$out" >"$out.log" 2>&1 &
    job=$!
    for _ in $(seq 600); do
        records=0
        [ -f "$out/metrics.jsonl" ] && records=$(wc -l <"$out/metrics.jsonl")
        [ "$records" -ge 3 ] && break
        kill -0 "$job" 2>/dev/null || break
        sleep 0.05
    done
    kill -"$signal" "$job" || fail "the run ended before it could be signalled"
    timeout 60 tail --pid="$job" -f /dev/null || fail "SIG$signal: still running 60 s after the signal"
    set +e
    wait "$job"
    status=$?
    set -e
    job=
    grep -v '^step ' "$out.log"
    [ "$status" = 0 ] || fail "SIG$signal: exit status $status, expected 0"
    grep -q "^checkpoint step-[0-9]* written in .* (stop requested)$" "$out.log" || fail "no stop checkpoint was written"
    step=$(sed -n 's/^stopped at step \([0-9]*\) of [0-9]* on request: checkpoint .* written, no final weights; continue with --resume latest$/\1/p' "$out.log")
    [ -n "$step" ] || fail "no 'stopped at step N of M on request' line"
    [ "$step" -lt "$steps" ] || fail "stopped at step $step: the signal came too late to test anything"
    [ -f "$out/checkpoints/$(printf 'step-%08d' "$step")/manifest.json" ] || fail "the stop checkpoint has no manifest"
    run_logged "$out-resumed.log" "resuming after SIG$signal" "${run[@]}" --out "$out" --resume latest
    grep "^RESUMING from" "$out-resumed.log"
    grep -q "^RESUMING from $out/checkpoints/$(printf 'step-%08d' "$step") at step $step of" "$out-resumed.log" \
        || fail "the resumed run did not start from the stop checkpoint (step $step)"
    same_run "$TMP/full-$name" "$out" "$steps" "$np"
    echo "SIG$signal at step $step, resumed: bit-identical to the uninterrupted run"
}

stop_and_resume term TERM 1 1000
stop_and_resume usr1 USR1 2 400
echo "PASS $(basename "$0")"
