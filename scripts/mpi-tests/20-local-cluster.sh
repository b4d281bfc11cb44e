#!/usr/bin/env bash
# Two "nodes" (network namespaces joined by a veth pair) over TCP: comm-check must pass across them, its traffic
# must cross the veth link, and the namespaces must be gone afterwards, also after a failed run.
source "$(dirname "$0")/lib.sh"
ensure_controlnet

if [ "$(id -u)" != 0 ]; then
    echo "SKIP $(basename "$0"): network namespaces need root"
    exit 0
fi

no_namespaces_left() {
    ! ip netns list | grep -qE '^cn-node[12]( |$)'
}

count=695664
repeats=20
log=$(mktemp)
trap 'rm -f "$log"' EXIT

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
echo "PASS $(basename "$0")"
