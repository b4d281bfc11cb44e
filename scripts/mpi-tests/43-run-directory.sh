#!/usr/bin/env bash
# The run directory belongs to one run, under real mpirun: a second job on a directory in use is refused naming
# the holder (host and pid) while the first finishes untouched; rerunning into a used directory is refused naming
# --resume latest and --overwrite and changes no file; --overwrite replaces the run (no stale shards of another
# world size survive); --resume latest over only invalid checkpoints refuses, naming each.
source "$(dirname "$0")/lib.sh"
ensure_controlnet
training_env

scratch_dir

train_tiny_base "$TMP/base"
BASE=$TMP/base/unet.safetensors
TRAIN=(train-controlnet --config tiny --resize --data-dir "$REPO_ROOT/data" --base "$BASE" --batch-size 8 --log-every 10)
mpirun_for 2
NP2=("${MPIRUN[@]}")

snapshot() { (cd "$1" && find . -type f ! -name run.lock -print0 | LC_ALL=C sort -z | xargs -0 sha256sum); }

# Two concurrent jobs on one directory: the first holds it; the second is refused and the first completes.
"${NP2[@]}" "$CONTROLNET" "${TRAIN[@]}" --max-steps 400 --checkpoint-every 100 --out "$TMP/run" >"$TMP/first.log" 2>&1 &
first=$!
for _ in $(seq 1 100); do grep -q "^step " "$TMP/first.log" 2>/dev/null && break; sleep 0.2; done
set +e
timeout -k 5 60 "${NP2[@]}" "$CONTROLNET" "${TRAIN[@]}" --max-steps 5 --out "$TMP/run" >"$TMP/second.log" 2>&1
second=$?
set -e
cat "$TMP/second.log" | grep -v "^$" | head -n 4
[ "$second" -ne 0 ] || fail "a second job on a directory in use was accepted"
grep -qE "\-\-out: .*/run is in use by another run \(host [^,]+, pid [0-9]+" "$TMP/second.log" || fail "the refusal does not name the holder"
wait "$first" || { cat "$TMP/first.log"; fail "the first job failed after the second was refused"; }
grep -q '"state" : "complete"' "$TMP/run/status.json" || fail "the first job did not complete"

# Rerunning into it: refused, nothing changed.
before=$(snapshot "$TMP/run")
set +e
"${NP2[@]}" "$CONTROLNET" "${TRAIN[@]}" --max-steps 5 --out "$TMP/run" >"$TMP/rerun.log" 2>&1
rerun=$?
set -e
[ "$rerun" -ne 0 ] || fail "rerunning into a used --out was accepted"
grep -q "already holds a run .*continue it with --resume latest, or replace it with --overwrite" "$TMP/rerun.log" \
    || { cat "$TMP/rerun.log"; fail "the refusal does not name --resume latest and --overwrite"; }
[ "$(snapshot "$TMP/run")" = "$before" ] || fail "the refused rerun changed files under --out"

# --overwrite at another world size: only the new run's shards remain.
"$CONTROLNET" "${TRAIN[@]}" --max-steps 4 --checkpoint-every 2 --checkpoints-total-limit 1 --overwrite --out "$TMP/run" \
    >"$TMP/overwrite.log" 2>&1 || { cat "$TMP/overwrite.log"; fail "--overwrite failed"; }
grep -q "^--overwrite: removed the earlier run's" "$TMP/overwrite.log" || fail "--overwrite did not say what it removed"
shards=$(cd "$TMP/run/checkpoints" && find . -name 'shard-*' | sort | tr '\n' ' ')
[ "$shards" = "./step-00000004/shard-00000-of-00001.safetensors " ] || fail "stale or missing shards after --overwrite: $shards"

# --resume latest over only invalid checkpoints: refused, naming each, nothing changed.
for d in "$TMP"/run/checkpoints/step-*; do printf 'x' >> "$d/shard-00000-of-00001.safetensors"; done
before=$(snapshot "$TMP/run")
set +e
"$CONTROLNET" "${TRAIN[@]}" --max-steps 8 --resume latest --out "$TMP/run" >"$TMP/invalid.log" 2>&1
invalid=$?
set -e
[ "$invalid" -ne 0 ] || fail "--resume latest over invalid checkpoints started from scratch"
grep -q "found no valid checkpoint among 1 committed ones" "$TMP/invalid.log" && grep -q "step-00000004" "$TMP/invalid.log" \
    || { cat "$TMP/invalid.log"; fail "the refusal does not name the invalid checkpoints"; }
[ "$(snapshot "$TMP/run")" = "$before" ] || fail "the refused resume changed files under --out"
echo "PASS $(basename "$0")"
