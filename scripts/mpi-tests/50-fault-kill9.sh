#!/usr/bin/env bash
# Crash safety of checkpoints: a 40-step tiny training (checkpoint every 2 steps) is killed with SIGKILL again and
# again at random moments - among them inside the window where every shard is durable but manifest.json is not yet
# written (CONTROLNET_FAULT_PAUSE_BEFORE_MANIFEST_MS widens it) - and each time restarted with the same command,
# `--resume latest`. Every restart must resume from the newest COMPLETE checkpoint (or start from scratch while
# there is none), naming the incomplete ones it skips, and the run must end bit-identical to one never killed.
# Rounds: np 1 (6 kills, 2 in the manifest window), then np 2 (a rank killed, the whole job killed in the window,
# a rank killed). Set FAULT_SEED to replay a failure's kill moments.
source "$(dirname "$0")/lib.sh"
ensure_controlnet
training_env

TMP=$(mktemp -d)
cleanup() {
    for pid in $(pgrep -f -- "--out $TMP/" || true); do kill -KILL "$pid" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

seed=${FAULT_SEED:-$RANDOM}
RANDOM=$seed
echo "kill moments drawn with seed $seed (replay: FAULT_SEED=$seed $0)"

train_tiny_base "$TMP/base"
# Batch 64 keeps a 40-step run near a second even on an idle machine, so that the random kill moments land in it.
TRAIN=(train-controlnet --config tiny --resize --data-dir "$REPO_ROOT/data" --base "$TMP/base/unet.safetensors"
    --batch-size 64 --lr 1e-3 --log-every 1 --max-steps 40 --checkpoint-every 2 --resume latest)
PAUSE_MS=300
attempts=0
kills=0
window_kills=0

# command_for NP: sets CMD to the training command line at NP ranks (without --out).
command_for() {
    if [ "$1" = 1 ]; then
        CMD=("$CONTROLNET" "${TRAIN[@]}")
    else
        mpirun_for "$1"
        CMD=("${MPIRUN[@]}" "$CONTROLNET" "${TRAIN[@]}")
    fi
}

# newest_committed OUT: the newest step with a manifest.json (a committed checkpoint), or nothing.
newest_committed() {
    local dir
    for dir in $(ls -d "$1"/checkpoints/step-* 2>/dev/null | sort -r); do
        if [ -f "$dir/manifest.json" ]; then
            echo $((10#${dir##*step-}))
            return
        fi
    done
}

records() {  # metrics records so far (every attempt appends)
    if [ -f "$1/metrics.jsonl" ]; then wc -l <"$1/metrics.jsonl"; else echo 0; fi
}

# rank_pids OUT: the controlnet processes (MPI ranks, or the one process at np 1) of the run writing OUT.
rank_pids() {
    pgrep -f -- "^$CONTROLNET train-controlnet .*--out $1( |$)" || true
}

# job_pids OUT: every process of that run (mpirun too).
job_pids() {
    pgrep -f -- "--out $1( |$)" || true
}

unpublished() {  # step directories under $1/checkpoints without a manifest
    local d names=""
    for d in "$1"/checkpoints/step-*; do
        [ -d "$d" ] && [ ! -f "$d/manifest.json" ] && names+="${d##*/} "
    done
    echo "${names:-none}"
}

# fresh_incomplete OUT MARKER: checkpoint directories holding a shard written after MARKER but no manifest.json.
fresh_incomplete() {
    local shard
    [ -d "$1/checkpoints" ] || return 0
    for shard in $(find "$1/checkpoints" -name 'shard-*.safetensors' -newer "$2" 2>/dev/null); do
        [ -f "$(dirname "$shard")/manifest.json" ] || dirname "$shard"
    done | sort -u
}

# attempt OUT NP MODE: one run of the command; MODE says how it ends:
#   early   SIGKILL at a random moment in the first 0.35 s (start-up, resume or the first steps)
#   random  SIGKILL 1-4 steps after this attempt's first step, plus 0-19 ms (np 2: one random rank is killed)
#   window  with the manifest pause: SIGKILL once the k-th (k = 1..3) checkpoint of this attempt has durable
#           shards but no manifest (np 2: mpirun and every rank at once, like a lost node)
#   none    run to the end; it must exit 0
attempt() {
    local out=$1 np=$2 mode=$3 log expected start job status target victim="" dirs d k p seen=() rank pids
    attempts=$((attempts + 1))
    log=$TMP/attempt-$attempts.log
    expected=$(newest_committed "$out")
    start=$(records "$out")
    touch "$TMP/marker"
    command_for "$np"
    # The job runs under a subshell that outlives it (the trailing exit stops bash from exec'ing it away), so that
    # bash prints no "Killed" notice; the processes to kill are found by their unique --out.
    if [ "$mode" = window ]; then
        (env CONTROLNET_FAULT_PAUSE_BEFORE_MANIFEST_MS=$PAUSE_MS "${CMD[@]}" --out "$out" >"$log" 2>&1; exit $?) 2>/dev/null &
    else
        ("${CMD[@]}" --out "$out" >"$log" 2>&1; exit $?) 2>/dev/null &
    fi
    job=$!
    while kill -0 "$job" 2>/dev/null && [ -z "$(rank_pids "$out")" ]; do sleep 0.005; done
    local what=""
    case $mode in
        early)
            sleep "0.$(printf '%03d' $((RANDOM % 350)))"
            victim=$(job_pids "$out")
            what="at a random early moment" ;;
        random)
            target=$((start + 1 + RANDOM % 4))
            while kill -0 "$job" 2>/dev/null && [ "$(records "$out")" -lt "$target" ]; do sleep 0.005; done
            sleep "0.0$(printf '%02d' $((RANDOM % 20)))"
            if [ "$np" = 1 ]; then
                victim=$(rank_pids "$out")
                what="after step record $((target - start)) of this attempt"
            else
                rank=$((RANDOM % np))
                for p in $(rank_pids "$out"); do
                    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$rank" && victim=$p
                done
                [ -n "$victim" ] || fail "attempt $attempts: rank $rank not found"
                what="rank $rank, after step record $((target - start)) of this attempt"
            fi ;;
        window)
            k=$((1 + RANDOM % 3))
            while kill -0 "$job" 2>/dev/null; do
                dirs=$(fresh_incomplete "$out" "$TMP/marker")
                if [ -n "$dirs" ]; then
                    for d in $dirs; do [[ " ${seen[*]:-} " == *" $d "* ]] || seen+=("$d"); done
                    [ "${#seen[@]}" -ge "$k" ] && break
                fi
                sleep 0.01
            done
            victim=$(job_pids "$out")
            what="in the manifest window of this attempt's checkpoint #$k (${seen[*]: -1})" ;;
        none) ;;
    esac
    if [ "$mode" != none ]; then
        kill -0 "$job" 2>/dev/null && [ -n "$victim" ] \
            || { cat "$log"; fail "attempt $attempts ($mode) ended before it could be killed"; }
        # shellcheck disable=SC2086
        kill -KILL $victim 2>/dev/null || true
        kills=$((kills + 1))
    fi
    timeout 60 tail --pid="$job" -f /dev/null || fail "attempt $attempts: still running 60 s after the kill"
    set +e
    wait "$job"
    status=$?
    set -e
    for _ in $(seq 100); do
        pids=$(rank_pids "$out")
        [ -z "$pids" ] && break
        sleep 0.1
    done
    [ -z "$pids" ] || fail "attempt $attempts: processes $pids outlived the job"

    # What it resumed from must be the newest complete checkpoint at its start.
    local resumed
    resumed=$(grep -E "^RESUMING from |^resume: no checkpoint under" "$log" || true)
    grep "^resume: skipped" "$log" | sed 's/^/    /' || true
    if [ -n "$expected" ]; then
        local want="RESUMING from $out/checkpoints/$(printf 'step-%08d' "$expected") at step $expected of"
        [ -z "$resumed" ] || [[ "$resumed" == "$want"* ]] || fail "attempt $attempts: '$resumed', expected '$want ...'"
    else
        [ -z "$resumed" ] || [ "$resumed" = "resume: no checkpoint under $out/checkpoints; starting fresh" ] \
            || fail "attempt $attempts: '$resumed' although no checkpoint was complete"
    fi
    [ "$(records "$out")" -eq "$start" ] || [ -n "$resumed" ] || fail "attempt $attempts trained without a resume line"
    if [ "$mode" = window ]; then
        # The kill landed inside the window only if that directory is still unpublished now.
        [ -f "${seen[-1]}/manifest.json" ] && fail "attempt $attempts: ${seen[-1]} got its manifest: the kill came too late"
        window_kills=$((window_kills + 1))
    fi
    if [ "$mode" = none ]; then
        [ "$status" = 0 ] || { cat "$log"; fail "attempt $attempts (no kill) exited $status"; }
    else
        [ "$status" != 0 ] || fail "attempt $attempts exited 0 although it was killed"
    fi
    printf 'attempt %2d (np %s, %-6s): %-50s -> %s; newest committed step: %s, unpublished: %s\n' "$attempts" "$np" "$mode" \
        "${resumed:-(killed before resuming)}" "${what:-finished (exit $status)}" "$(newest_committed "$out" | grep . || echo none)" \
        "$(unpublished "$out")"
}

# round NP MODES...: an uninterrupted reference, then the killed attempts and a last one that finishes.
round() {
    local np=$1 ref=$TMP/reference-$1 out=$TMP/faulty-$1 r shard mode
    shift
    echo "== np $np: reference run, then attempts: $* none"
    command_for "$np"
    run_logged "$ref.log" "the np $np reference run" "${CMD[@]}" --out "$ref"
    for mode in "$@" none; do
        attempt "$out" "$np" "$mode"
    done
    for ((r = 0; r < np; r++)); do
        shard=checkpoints/step-00000040/$(printf 'shard-%05d-of-%05d.safetensors' "$r" "$np")
        cmp "$ref/$shard" "$out/$shard" || fail "np $np: $shard differs from the uninterrupted run's"
    done
    echo "np $np: all $np step-40 shard(s) byte-identical to the uninterrupted run's"
    "$CONTROLNET" diff-weights "$ref/controlnet.safetensors" "$out/controlnet.safetensors" | tee "$TMP/diff.json"
    [ "$(jq .bit_identical "$TMP/diff.json")" = true ] || fail "np $np: final weights differ from the uninterrupted run's"
    local leftovers
    leftovers=$(cd "$out/checkpoints" && find . -name '.*tmp*' | sort | tr '\n' ' ')
    [ -z "$leftovers" ] || echo "note: temporary files of killed writes remain in checkpoint directories: $leftovers"
}

round 1 early random window random window random
round 2 random window random
echo "$kills kills ($window_kills inside the manifest window) in $attempts attempts"
[ "$kills" -ge 6 ] && [ "$window_kills" -ge 2 ] || fail "too few kills"
echo "PASS $(basename "$0")"
