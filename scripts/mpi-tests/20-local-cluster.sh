#!/usr/bin/env bash
# Two "nodes" (network namespaces joined by a veth pair) over TCP: comm-check must pass across them, its traffic
# must cross the veth link, and the namespaces must be gone afterwards, also after a failed run. Then a short
# ControlNet training across the two nodes must match --simulate-ranks 2 within 1e-5, with bit-identical replicas,
# a complete 2-shard checkpoint, and its gradient all-reduces crossing the veth link.
source "$(dirname "$0")/lib.sh"
ensure_controlnet

if [ "$(id -u)" != 0 ]; then
    echo "SKIP $(basename "$0"): network namespaces need root"
    exit 0
fi

no_namespaces_left() {
    ! ip netns list | grep -qE "^${CLUSTER_NAME:-cn}-node[12]( |\$)"
}

count=695664
repeats=20
log=$(mktemp)
TMP=$(mktemp -d)
trap 'rm -f "$log"; rm -rf "$TMP"' EXIT
export CONTROLNET_PROGRESS=lines

timeout -k 10 180 "$REPO_ROOT/cluster/local-cluster.sh" -- comm-check --count $count --repeats $repeats >"$log" 2>&1 \
    || { cat "$log"; fail "comm-check across the namespace cluster failed"; }
cat "$log"
grep -q "^comm-check ok: world 2, backend mpi, hosts \[node1, node2\]" "$log" \
    || fail "no success line naming node1 and node2"
sent=$(sed -n "s/.*node1's veth sent \([0-9]*\) bytes.*/\1/p" "$log")
# Each timed all-reduce moves at least the whole buffer out of node1 once.
minimum=$((count * 4 * repeats))
[ -n "$sent" ] && [ "$sent" -ge "$minimum" ] || fail "node1's veth sent ${sent:-?} bytes, expected at least $minimum"
no_namespaces_left || fail "namespaces left behind after a successful run"

# A failing workload must fail the script and still leave nothing behind.
if timeout -k 10 120 "$REPO_ROOT/cluster/local-cluster.sh" -- comm-check --count 1000 --repeats 1 \
    --die-rank 1 --die-after-seconds 1 >"$log" 2>&1; then
    fail "local-cluster.sh exited 0 although rank 1 was killed"
fi
no_namespaces_left || fail "namespaces left behind after a failed run"

# Training across the nodes: both share this machine's file system, so the base, the data and the run directory
# are plain absolute paths.
"$CONTROLNET" train-base --config tiny --resize --data-dir "$REPO_ROOT/data" --max-steps 30 --batch-size 16 \
    --out "$TMP/base" >"$log" 2>&1 || { cat "$log"; fail "could not train the tiny base"; }
steps=5
TRAIN=(train-controlnet --config tiny --resize --data-dir "$REPO_ROOT/data" --base "$TMP/base/unet.safetensors"
    --max-steps $steps --batch-size 8 --lr 1e-3 --log-every 1 --checkpoint-every $steps)
timeout -k 10 180 "$REPO_ROOT/cluster/local-cluster.sh" -- "${TRAIN[@]}" --out "$TMP/cluster" >"$log" 2>&1 \
    || { cat "$log"; fail "training across the namespace cluster failed"; }
grep -v '^  "\|^  \]' "$log"
no_namespaces_left || fail "namespaces left behind after the training run"
grep -q "^world: 2 process(es) x 1 simulated = 2 rank(s), backend mpi" "$log" || fail "no world line for 2 MPI ranks"
grep -q "^replica check: all 2 ranks hold bit-identical trainable weights" "$log" || fail "no replica-check line"
grep -q "^frozen base unchanged: SHA-256 " "$log" || fail "no frozen-base line"
checkpoint=$TMP/cluster/checkpoints/step-0000000$steps
for file in manifest.json shard-00000-of-00002.safetensors shard-00001-of-00002.safetensors; do
    [ -f "$checkpoint/$file" ] || fail "the checkpoint lacks $file"
done
[ "$(jq -r '[.world_size, (.shards | length)] | @tsv' "$checkpoint/manifest.json")" = "$(printf '2\t2')" ] \
    || fail "the manifest does not describe 2 shards of a 2-rank world"
"$CONTROLNET" "${TRAIN[@]}" --simulate-ranks 2 --out "$TMP/sim2" >"$TMP/sim2.log" 2>&1 \
    || { cat "$TMP/sim2.log"; fail "--simulate-ranks 2 training failed"; }
echo "across the cluster vs --simulate-ranks 2:"
"$CONTROLNET" diff-weights "$TMP/cluster/controlnet.safetensors" "$TMP/sim2/controlnet.safetensors" --tolerance 1e-5 \
    || fail "weights trained across the cluster differ from --simulate-ranks 2 by more than 1e-5"
sent=$(sed -n "s/.*node1's veth sent \([0-9]*\) bytes.*/\1/p" "$log")
# Every step all-reduces the 88256-byte gradient buffer, and at least that much leaves node1 for it.
minimum=$((88256 * steps))
[ -n "$sent" ] && [ "$sent" -ge "$minimum" ] || fail "node1's veth sent ${sent:-?} bytes in training, expected at least $minimum"
echo "PASS $(basename "$0")"
