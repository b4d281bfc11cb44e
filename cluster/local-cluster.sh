#!/usr/bin/env bash
# A 2-node cluster on this one machine, to test multi-node runs over real TCP without real nodes: two network
# namespaces (cn-node1, cn-node2) joined by a veth pair, each with its own host name, addresses only inside the
# namespaces, mpirun in node1 reaching node2 through an rsh agent instead of ssh. Runs one controlnet command
# across it and tears everything down on exit, failure or Ctrl-C.
#
# Usage (as root: namespaces need CAP_NET_ADMIN):
#   cluster/local-cluster.sh                       # controlnet comm-check
#   cluster/local-cluster.sh -- comm-check --repeats 50
#   cluster/local-cluster.sh -- train-controlnet ... --max-steps 20   # any controlnet arguments after --
# Environment: CONTROLNET (binary, default .build/release/controlnet), RANKS_PER_NODE (default 1), CLUSTER_NAME
# (prefix of the namespace names, default cn: cn-node1 and cn-node2; another prefix lets two clusters coexist),
# OOB_KEEPALIVE ("IDLE INTERVAL PROBES": when mpirun declares a silent node lost, see cluster/README.md; default
# Open MPI's own).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CONTROLNET=${CONTROLNET:-$REPO_ROOT/.build/release/controlnet}
RANKS_PER_NODE=${RANKS_PER_NODE:-1}
# Checked before any namespace is made: "abc" was read as an unset variable mid-setup.
[[ "$RANKS_PER_NODE" =~ ^[1-9][0-9]*$ ]] && [ "$RANKS_PER_NODE" -le 64 ] \
    || { echo "local-cluster: RANKS_PER_NODE must be an integer in 1...64, got '$RANKS_PER_NODE'" >&2; exit 2; }
if [ -n "${OOB_KEEPALIVE:-}" ] && ! [[ "$OOB_KEEPALIVE" =~ ^[1-9][0-9]*\ [1-9][0-9]*\ [1-9][0-9]*$ ]]; then
    echo "local-cluster: OOB_KEEPALIVE must be three positive integers \"IDLE INTERVAL PROBES\", got '$OOB_KEEPALIVE'" >&2
    exit 2
fi
CLUSTER_NAME=${CLUSTER_NAME:-cn}
NODES=(node1 node2)
ADDRESSES=(10.77.0.1 10.77.0.2)
SUBNET=10.77.0.0/24
MTU=65000

if [ "${1:-}" = "--" ]; then
    shift
fi
if [ $# -gt 0 ]; then
    WORKLOAD=("$@")
else
    WORKLOAD=(comm-check)
fi

[[ "$CLUSTER_NAME" =~ ^[a-z][a-z0-9]{0,7}$ ]] || { echo "local-cluster.sh: CLUSTER_NAME must be 1-8 lower-case letters or digits, got '$CLUSTER_NAME'" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "local-cluster.sh: must run as root (it creates network namespaces)" >&2; exit 1; }
[ -x "$CONTROLNET" ] || {
    echo "local-cluster.sh: no executable at $CONTROLNET; build it: swift build -c release --product controlnet" >&2
    exit 1
}

WORK=$(mktemp -d /tmp/cn-cluster.XXXXXX)

namespace() { echo "$CLUSTER_NAME-$1"; }

remove_namespaces() {
    local node ns pid
    for node in "${NODES[@]}"; do
        ns=$(namespace "$node")
        if ip netns list | grep -qw "$ns"; then
            # Anything still running in the namespace was started by this script (ranks, orted, mpirun).
            for pid in $(ip netns pids "$ns" 2>/dev/null); do
                kill -KILL "$pid" 2>/dev/null || true
            done
            ip netns del "$ns"  # also removes its end of the veth pair, and with it the other end
        fi
    done
}

teardown() {
    remove_namespaces
    rm -rf "$WORK"
}
# On a signal, stop mpirun first (it forwards the signal to the ranks) and let the EXIT trap clean up.
stop_on_signal() {
    local tries=0
    if [ -n "${mpirun_pid:-}" ]; then
        kill -TERM "$mpirun_pid" 2>/dev/null || true
        # Give it 10 s to take its ranks down cleanly before the EXIT trap kills what is left.
        while kill -0 "$mpirun_pid" 2>/dev/null && [ $tries -lt 50 ]; do
            sleep 0.2
            tries=$((tries + 1))
        done
    fi
    exit "$1"
}
trap teardown EXIT
trap 'stop_on_signal 130' INT
trap 'stop_on_signal 143' TERM

# A previous run killed with SIGKILL cannot have cleaned up; its namespaces carry our names, so remove them.
remove_namespaces

for node in "${NODES[@]}"; do
    ip netns add "$(namespace "$node")"
done
# Both ends are created straight inside the namespaces, so no address or link ever exists in the host namespace.
ip link add cn-veth1 netns "$(namespace node1)" mtu $MTU type veth peer name cn-veth2 netns "$(namespace node2)" mtu $MTU
for i in 0 1; do
    ns=$(namespace "${NODES[$i]}")
    dev=cn-veth$((i + 1))
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "${ADDRESSES[$i]}/24" dev "$dev"
    ip -n "$ns" link set "$dev" up
done

# mpirun's "ssh": called as `agent [options] host command...`, it runs the command (a shell command line, as
# ssh would hand it to the remote shell) inside that node's namespace, with the node's own host name so that
# Open MPI's per-host session directories in the shared /tmp do not collide. The environment (PATH,
# LD_LIBRARY_PATH) passes through unchanged because the agent is mpirun's own child.
cat >"$WORK/rsh-agent" <<AGENT
#!/bin/sh
prefix=$CLUSTER_NAME
AGENT
cat >>"$WORK/rsh-agent" <<'AGENT'
while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do shift; done  # ignore ssh-style options
host=$1
shift
case "$host" in
    node1 | 10.77.0.1) node=node1 ;;
    node2 | 10.77.0.2) node=node2 ;;
    *) echo "rsh-agent: unknown host $host (expected node1 or node2)" >&2; exit 255 ;;
esac
exec ip netns exec "$prefix-$node" unshare --uts /bin/sh -c 'hostname "$0" && exec /bin/sh -c "$1"' "$node" "$*"
AGENT
chmod +x "$WORK/rsh-agent"

for node in "${NODES[@]}"; do
    echo "$node slots=$RANKS_PER_NODE"
done >"$WORK/hostfile"

MPIRUN=(mpirun -np $((RANKS_PER_NODE * ${#NODES[@]})) --hostfile "$WORK/hostfile" --allow-run-as-root
    --mca plm_rsh_agent "$WORK/rsh-agent" --mca plm_rsh_no_tree_spawn 1
    --mca pml ob1 --mca btl tcp,self
    --mca btl_tcp_if_include "$SUBNET" --mca oob_tcp_if_include "$SUBNET"
    --bind-to none --map-by node
    -x OPENBLAS_NUM_THREADS=1 -x PATH)
if [ -n "${OOB_KEEPALIVE:-}" ]; then
    read -r idle interval probes <<<"$OOB_KEEPALIVE"
    MPIRUN+=(--mca oob_tcp_keepalive_time "$idle" --mca oob_tcp_keepalive_intvl "$interval"
        --mca oob_tcp_keepalive_probes "$probes")
fi
for variable in LD_LIBRARY_PATH OPENBLAS_CORETYPE CONTROLNET_PROGRESS; do
    if [ -n "${!variable:-}" ]; then
        MPIRUN+=(-x "$variable")
    fi
done

echo "local-cluster: ${NODES[*]} at ${ADDRESSES[*]} (veth MTU $MTU); running: controlnet ${WORKLOAD[*]}" >&2
# mpirun itself runs on node1, like a job script on the first node of an allocation. It runs in the background
# only so that a signal to this script is handled at once (bash defers traps while a foreground child runs).
ip netns exec "$(namespace node1)" unshare --uts /bin/sh -c 'hostname node1 && exec "$@"' sh \
    "${MPIRUN[@]}" "$CONTROLNET" "${WORKLOAD[@]}" &
mpirun_pid=$!
set +e
wait "$mpirun_pid"
status=$?
set -e
mpirun_pid=

tx=$(ip netns exec "$(namespace node1)" cat /sys/class/net/cn-veth1/statistics/tx_bytes)
rx=$(ip netns exec "$(namespace node1)" cat /sys/class/net/cn-veth1/statistics/rx_bytes)
echo "local-cluster: exit status $status; node1's veth sent $tx bytes and received $rx bytes" >&2
exit $status
