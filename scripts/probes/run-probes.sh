#!/usr/bin/env bash
# The hostile probe suite of issue #13 ("nothing lost, nothing crashes"): several hundred small attacks on the
# `controlnet` CLI, grouped in the issue's classes:
#   1 mem     memory limits (ulimit -v) on every command
#   2 rundir  the run directory belongs to one run: reuse, locks, outputs that are inputs, edited manifests, retention
#   3 input   crashes that must be clear errors: bad numbers, bad shapes, bad configs, full disks, huge values
#   4 finite  non-finite and out-of-range values refused naming the tensor; diff-weights output stays JSON
#   5 agree   ranks and resumes that must agree (MPMD launches, resumes with other options, class data)
#   6 signal  signals and exits; gzip bombs, corrupt data files
#   7 misc    export, diff-weights, info, bench, sample, eval, comm-check with bad arguments; odd paths
#
# Every probe prints one line, `PASS|FAIL <id> <class> <description> (exit N, T s)`, a FAIL is followed by its
# reasons and an excerpt of the output (indented), and the run ends with `N probes, M failed` (exit 1 when M > 0).
# A probe fails when a command crashes (exit >= 128, a signal, "Fatal error", a backtrace...), hangs (every
# command runs under `timeout`), exits 0 where it must refuse, refuses without naming the option/file/tensor, or
# changes/loses a file it must not touch.
#
# Not part of the CI test run (it takes ~10-20 minutes on a 2-core machine). Usage:
#   CONTROLNET=.build/release/controlnet bash scripts/probes/run-probes.sh            # everything
#   PROBE_FILTER='^(mem|input)' bash scripts/probes/run-probes.sh                      # probes whose "id class" matches
#   PROBE_KEEP=1 ...                                                                   # keep the scratch directory
# Needs: python3 (with the standard library only), mpirun (Open MPI), gzip, coreutils; root for the tmpfs
# (full-disk) probes, which fall back to `ulimit -f` otherwise.
set -u
set -o pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CN=${CONTROLNET:-.build/release/controlnet}
case $CN in /*) ;; *) CN=$(cd "$(dirname "$CN")" 2>/dev/null && pwd)/$(basename "$CN") ;; esac
[ -x "$CN" ] || { echo "no executable controlnet at $CN (set CONTROLNET)" >&2; exit 2; }
DATA_DIR=${PROBE_DATA_DIR:-$REPO_ROOT/data}
# In a secondary git worktree the (untracked) data lives in the main worktree.
if [ -z "${PROBE_DATA_DIR:-}" ] && [ ! -f "$DATA_DIR/mnist_5k.csv.gz" ]; then
    main_wt=$(git -C "$REPO_ROOT" worktree list --porcelain 2>/dev/null | sed -n '1s/^worktree //p')
    [ -n "$main_wt" ] && [ -f "$main_wt/data/mnist_5k.csv.gz" ] && DATA_DIR=$main_wt/data
fi
[ -f "$DATA_DIR/mnist_5k.csv.gz" ] || { echo "no $DATA_DIR/mnist_5k.csv.gz (run scripts/setup.sh or set PROBE_DATA_DIR)" >&2; exit 2; }
MNIST_BASE=${PROBE_MNIST_BASE:-$REPO_ROOT/models/mnist-base.safetensors}
FILTER=${PROBE_FILTER:-}

export CONTROLNET_PROGRESS=lines OPENBLAS_NUM_THREADS=1
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
MPI=(mpirun --mca pml ob1 --mca btl self,vader --bind-to none -x OPENBLAS_NUM_THREADS=1 -x CONTROLNET_PROGRESS)

SCR=$(mktemp -d "${PROBE_TMP:-/tmp}/controlnet-probes.XXXXXX")
MOUNTS=()
BG_PIDS=()
MAIN_PID=$BASHPID
cleanup() {
    # Subshells (the background guards) inherit this trap: only the script itself cleans up.
    [ "$BASHPID" = "$MAIN_PID" ] || return 0
    local p m
    for p in "${BG_PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    for m in "${MOUNTS[@]}"; do umount -l "$m" 2>/dev/null; done
    chmod -R u+rwx "$SCR" 2>/dev/null
    if [ -z "${PROBE_KEEP:-}" ]; then rm -rf "$SCR"; else echo "scratch kept: $SCR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$SCR" || exit 2
mkdir -p logs

# ---------------------------------------------------------------------------------------------------------------
# The probe framework.
#   probe ID CLASS DESCRIPTION   starts a probe (skipped when PROBE_FILTER does not match "ID CLASS")
#   run SECS CMD...              runs CMD under `timeout` with its output in $LOG; sets RC; adds the time; any crash
#                                or hang is a failure of the probe
#   want_ok / want_fail / want_rc N / want_msg REGEX / want_no_msg REGEX / bad REASON
#   snap NAME PATH... / unchanged NAME   hashes files (directories: every file under them, run.lock excepted)
#   end_probe                    prints the PASS/FAIL line
# ---------------------------------------------------------------------------------------------------------------
TOTAL=0 FAILED=0
declare -A CLASS_TOTAL=() CLASS_FAILED=()
P_ID="" P_CLASS="" P_DESC="" P_ON=0 P_T=0 P_RUNS=0 RC=0 LOG=/dev/null
P_REASONS=()
CRASH_RE='Fatal error|Program crashed|Illegal instruction|Segmentation fault|double free|\*\*\* Signal [0-9]|exited on signal|core dumped|free\(\): |malloc\(\)|stack smashing|Backtracing|terminate called|EXC_BAD|Trace/breakpoint'

probe() {
    P_ID=$1 P_CLASS=$2 P_DESC=$3 P_T=0 P_RUNS=0 RC=0 LOG=/dev/null P_REASONS=()
    if [ -n "$FILTER" ] && ! [[ "$P_ID $P_CLASS" =~ $FILTER ]]; then P_ON=0; return 1; fi
    P_ON=1
    mkdir -p "$SCR/p/$P_ID"
    return 0
}
on() { [ "$P_ON" = 1 ]; }

bad() { P_REASONS+=("$*"); }

# run SECS CMD...: the command's stdout+stderr go to $LOG.
run() {
    local secs=$1; shift
    P_RUNS=$((P_RUNS + 1))
    LOG=$SCR/logs/$P_ID.$P_RUNS.log
    local t0 t1
    t0=$(date +%s.%N)
    timeout -k 5 "$secs" "$@" >"$LOG" 2>&1 </dev/null
    RC=$?
    t1=$(date +%s.%N)
    P_T=$(echo "$P_T + $t1 - $t0" | bc)
    check_crash
}

# check_crash: the last command neither crashed nor hung.
check_crash() {
    if [ "$RC" = 124 ] || [ "$RC" = 137 ]; then bad "hang: killed by timeout (run $P_RUNS, exit $RC)"; return; fi
    if [ "$RC" -ge 128 ]; then bad "crash: exit $RC (signal $((RC - 128))) (run $P_RUNS)"; fi
    if grep -Eq "$CRASH_RE" "$LOG" 2>/dev/null; then bad "crash text in the output: $(grep -Eo "$CRASH_RE" "$LOG" | head -1) (run $P_RUNS)"; fi
}

want_ok() { [ "$RC" = 0 ] || bad "expected exit 0, got $RC"; }
want_fail() { if [ "$RC" = 0 ]; then bad "expected a refusal (exit 1..127), got exit 0"; fi; }
want_rc() { [ "$RC" = "$1" ] || bad "expected exit $1, got $RC"; }
want_msg() { grep -Eiq -- "$1" "$LOG" || bad "the output does not match /$1/"; }
want_no_msg() { if grep -Eiq -- "$1" "$LOG"; then bad "the output matches /$1/: $(grep -Eio -- "$1" "$LOG" | head -1)"; fi; }
# want_refused REGEX: exit 1..127 and a message matching REGEX (the option, file or tensor at fault).
want_refused() { want_fail; want_msg "$1"; }
# want_ok_or_refused REGEX: either runs (exit 0) or refuses naming REGEX.
want_ok_or_refused() { [ "$RC" = 0 ] || want_msg "$1"; }

# tree_hash PATH...: one line per file under the paths (run.lock excepted): path and SHA-256; missing paths too.
tree_hash() {
    local p
    for p in "$@"; do
        if [ -d "$p" ]; then
            find "$p" \( -type f -o -type l \) ! -name run.lock -print0 2>/dev/null | sort -z | xargs -0 -r sha256sum 2>/dev/null
        elif [ -e "$p" ]; then
            sha256sum "$p"
        else
            echo "missing $p"
        fi
    done
}
declare -A SNAPS=() SNAP_PATHS=()
snap() { local name=$1; shift; SNAP_PATHS[$name]="$*"; SNAPS[$name]=$(tree_hash "$@"); }
unchanged() {
    local name=$1 now
    # shellcheck disable=SC2086
    now=$(tree_hash ${SNAP_PATHS[$name]})
    if [ "$now" != "${SNAPS[$name]}" ]; then
        bad "files changed ($name): $(diff <(echo "${SNAPS[$name]}") <(echo "$now") | grep '^[<>]' | head -3 | tr '\n' ';')"
    fi
}

end_probe() {
    on || return 0
    TOTAL=$((TOTAL + 1))
    CLASS_TOTAL[$P_CLASS]=$(( ${CLASS_TOTAL[$P_CLASS]:-0} + 1 ))
    local t
    t=$(printf '%.1f' "$P_T")
    if [ ${#P_REASONS[@]} = 0 ]; then
        echo "PASS $P_ID $P_CLASS $P_DESC (exit $RC, $t s)"
    else
        FAILED=$((FAILED + 1))
        CLASS_FAILED[$P_CLASS]=$(( ${CLASS_FAILED[$P_CLASS]:-0} + 1 ))
        echo "FAIL $P_ID $P_CLASS $P_DESC (exit $RC, $t s)"
        local r
        for r in "${P_REASONS[@]}"; do echo "    - $r"; done
        echo "    - command: ${P_CMD:-see log}"
        if [ -s "$LOG" ]; then
            grep -v '^\s*$' "$LOG" | grep -Ev '^ *"[a-z_]+" : |^resolved options|^[{}]$' | head -8 | cut -c1-300 | sed 's/^/    | /'
        fi
    fi
    P_CMD=""
    P_ON=0
}

# runc SECS CMD...: like run, and remembers the command line for the report.
runc() { P_CMD=$(printf '%q ' "${@:2}" | sed "s#$SCR#\$SCR#g; s#$CN#controlnet#g"); run "$@"; }

# A probe in one call: simple SECS EXPECT REGEX ID CLASS DESCRIPTION -- CMD...
#   EXPECT: ok (exit 0), refuse (exit 1..127 naming REGEX), any (no crash or hang), okref (exit 0, or a refusal naming REGEX)
simple() {
    local secs=$1 expect=$2 re=$3 id=$4 class=$5 desc=$6
    shift 6; [ "$1" = -- ] && shift
    probe "$id" "$class" "$desc" || return 0
    runc "$secs" "$@"
    case $expect in
        ok) want_ok ;;
        refuse) want_refused "$re" ;;
        okref) want_ok_or_refused "$re" ;;
        any) ;;
    esac
    end_probe
}

# ---------------------------------------------------------------------------------------------------------------
# Fixtures.
# ---------------------------------------------------------------------------------------------------------------
cat >"$SCR/pt.py" <<'PYEOF'
import gzip, hashlib, json, math, os, re, struct, sys, zlib

def read_st(path):
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n])
    return h, b[8 + n:]

def write_st(path, header, data):
    hb = json.dumps(header).encode()
    hb += b' ' * ((8 - len(hb) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(hb))); f.write(hb); f.write(data)

def tensors(header):
    return sorted([k for k in header if k != '__metadata__'], key=lambda k: header[k]['data_offsets'][0])

def fval(s):
    return float(s)

cmd = sys.argv[1]
a = sys.argv[2:]
if cmd == 'poison':            # poison IN OUT VALUE [TENSOR|first|last] [INDEX]: set one F32 value
    h, d = read_st(a[0]); d = bytearray(d)
    names = [k for k in tensors(h) if h[k]['dtype'] == 'F32']
    which = a[3] if len(a) > 3 else 'first'
    name = names[0] if which == 'first' else names[-1] if which == 'last' else which
    idx = int(a[4]) if len(a) > 4 else 0
    off = h[name]['data_offsets'][0] + 4 * idx
    d[off:off + 4] = struct.pack('<f', fval(a[2]))
    write_st(a[1], h, bytes(d)); print(name)
elif cmd == 'hints':           # hints OUT N C H W FILL [POISON] [SHAPE-OVERRIDE-JSON] [DTYPE]
    out, n, c, hh, w, fill = a[0], int(a[1]), int(a[2]), int(a[3]), int(a[4]), fval(a[5])
    poison = a[6] if len(a) > 6 and a[6] != '-' else None
    count = n * c * hh * w
    vals = [fill] * count
    if poison is not None and count: vals[count // 2] = fval(poison)
    dtype = a[8] if len(a) > 8 else 'F32'
    if dtype == 'F32': data = struct.pack('<%df' % count, *vals)
    elif dtype == 'F64': data = struct.pack('<%dd' % count, *vals)
    elif dtype == 'I64': data = struct.pack('<%dq' % count, *[int(v) for v in vals])
    shape = json.loads(a[7]) if len(a) > 7 and a[7] != '-' else [n, c, hh, w]
    write_st(out, {'hints': {'dtype': dtype, 'shape': shape, 'data_offsets': [0, len(data)]}}, data)
elif cmd == 'rename':          # rename IN OUT NEWNAME: rename the first tensor
    h, d = read_st(a[0]); name = tensors(h)[0]
    h[a[2]] = h.pop(name); write_st(a[1], h, d)
elif cmd == 'meta':            # meta IN OUT KEY VALUE|--delete: edit the metadata
    h, d = read_st(a[0]); m = h.setdefault('__metadata__', {})
    if a[3] == '--delete': m.pop(a[2], None)
    else: m[a[2]] = a[3]
    write_st(a[1], h, d)
elif cmd == 'dtype':           # dtype IN OUT: the first F32 tensor stored as F64 (values kept) - a legal change
    h, d = read_st(a[0]); names = tensors(h); out = b''; off = 0
    first = names[0]
    for k in names:
        s, e = h[k]['data_offsets']; chunk = d[s:e]
        if k == first:
            vals = struct.unpack('<%df' % ((e - s) // 4), chunk); chunk = struct.pack('<%dd' % len(vals), *vals); h[k]['dtype'] = 'F64'
        h[k]['data_offsets'] = [off, off + len(chunk)]; out += chunk; off += len(chunk)
    write_st(a[1], h, out)
elif cmd == 'reseal':          # reseal MANIFEST seal|raw PATTERN REPLACEMENT...: regex edits, then a fresh self-checksum
    path, seal = a[0], a[1] == 'seal'
    if len(a) % 2: sys.exit('reseal: PATTERN without REPLACEMENT')
    t = open(path).read()
    for pat, rep in zip(a[2::2], a[3::2]):
        if not re.search(pat, t): sys.exit('pattern not found: ' + pat)
        t = re.sub(pat, rep, t)
    m = re.search(r'"manifest_sha256" : "([0-9a-f]*)"', t)
    if seal and m:
        c = t.replace(m.group(0), '"manifest_sha256" : ""')
        t = t.replace(m.group(0), '"manifest_sha256" : "%s"' % hashlib.sha256(c.encode()).hexdigest())
    open(path, 'w').write(t)
elif cmd == 'idx':             # idx OUT COUNT ROWS COLS [DECLARED-COUNT] [gz]: an IDX3 ubyte image file
    out, n, r, c = a[0], int(a[1]), int(a[2]), int(a[3])
    declared = int(a[4]) if len(a) > 4 and a[4] != '-' else n
    body = struct.pack('>IIII', 0x00000803, declared & 0xffffffff, r, c) + bytes((i * 37) % 256 for i in range(n * r * c))
    op = gzip.open if len(a) > 5 and a[5] == 'gz' else open
    with op(out, 'wb') as f: f.write(body)
elif cmd == 'idxlabels':       # idxlabels OUT COUNT MAXLABEL: an IDX1 label file
    out, n, mx = a[0], int(a[1]), int(a[2])
    with open(out, 'wb') as f: f.write(struct.pack('>II', 0x00000801, n) + bytes(i % (mx + 1) for i in range(n)))
elif cmd == 'gzbomb':          # gzbomb OUT PREFIX-KIND MEGABYTES: gzip of a header + zeros (streamed, level 1)
    out, kind, mb = a[0], a[1], int(a[2])
    c = zlib.compressobj(1, zlib.DEFLATED, 31)
    with open(out, 'wb') as f:
        if kind == 'idx': f.write(c.compress(struct.pack('>IIII', 0x00000803, 10, 28, 28)))
        elif kind == 'idxbig': f.write(c.compress(struct.pack('>IIII', 0x00000803, 0x7fffffff, 28, 28)))
        elif kind == 'csv': f.write(c.compress(b','.join(b'0' for i in range(785)) + b'\n'))
        chunk = bytes(16 << 20) if kind != 'csvrow' else (b'0,' * (8 << 20))
        for _ in range(mb // 16): f.write(c.compress(chunk))
        f.write(c.flush())
elif cmd == 'json':            # json FILE: exits 1 unless FILE (or stdin '-') holds exactly one valid JSON value
    s = sys.stdin.read() if a[0] == '-' else open(a[0]).read()
    lines = [l for l in s.splitlines() if l.strip().startswith('{')]
    try:
        json.loads(s if a[0] != '-' else lines[-1] if lines else s)
    except Exception as e:
        print('invalid JSON:', e); sys.exit(1)
elif cmd == 'status':          # status OUT: prints state and step of OUT/status.json
    s = json.load(open(os.path.join(a[0], 'status.json'))); print(s.get('state'), s.get('step'))
elif cmd == 'config':          # config OUT JSON-MODIFICATIONS: the tiny config with keys replaced (JSON object)
    base = {"attention_levels": [1], "channel_mult": [1, 2], "hint_block_channels": [4, 8], "hint_channels": 1,
            "image_size": 8, "in_channels": 1, "model_channels": 8, "norm_groups": 2, "num_classes": 0,
            "num_heads": 2, "num_res_blocks": 1}
    mods = json.loads(a[1])
    for k, v in mods.items():
        if v == '__delete__': base.pop(k, None)
        else: base[k] = v
    open(a[0], 'w').write(json.dumps(base))
elif cmd == 'metrics-valid':   # metrics-valid FILE: every line is a JSON object
    for i, l in enumerate(open(a[0])):
        try: json.loads(l)
        except Exception as e: print('line', i + 1, 'invalid:', e); sys.exit(1)
PYEOF
pt() { python3 "$SCR/pt.py" "$@"; }

echo "controlnet: $CN"
echo "scratch:    $SCR"
echo "fixtures..."
T0=$(date +%s)
FX=$SCR/fx
mkdir -p "$FX"
TINY=(--config tiny --resize --data-dir "$DATA_DIR")
"$CN" train-base "${TINY[@]}" --max-steps 30 --batch-size 16 --out "$FX/base" >"$FX/base.log" 2>&1 \
    || { cat "$FX/base.log"; echo "cannot train the tiny base" >&2; exit 2; }
BASE=$FX/base/unet.safetensors
# A finished tiny ControlNet run with checkpoints at steps 2, 4, 6.
"$CN" train-controlnet "${TINY[@]}" --base "$BASE" --batch-size 8 --max-steps 6 --checkpoint-every 2 --log-every 1 \
    --out "$FX/cn" >"$FX/cn.log" 2>&1 || { cat "$FX/cn.log"; echo "cannot train the tiny ControlNet" >&2; exit 2; }
CTRL=$FX/cn/controlnet.safetensors
# A base run with checkpoints (mode base), for export.
"$CN" train-base "${TINY[@]}" --batch-size 8 --max-steps 4 --checkpoint-every 2 --out "$FX/bck" >"$FX/bck.log" 2>&1 \
    || { cat "$FX/bck.log"; echo "cannot train the tiny base run with checkpoints" >&2; exit 2; }
# A tiny-class base (3 classes), for the class probes, trained on the digits 0-2 of MNIST-5k (CSV, label last).
gzip -dc "$DATA_DIR/mnist_5k.csv.gz" | awk -F, '$NF <= 2' >"$FX/mnist012.csv"
CLS012=$FX/mnist012.csv
"$CN" train-base --config tiny-class --resize --data "$CLS012" --max-steps 4 --batch-size 8 --out "$FX/cbase" \
    >"$FX/cbase.log" 2>&1 || { cat "$FX/cbase.log"; echo "cannot train the tiny-class base" >&2; exit 2; }
CBASE=$FX/cbase/unet.safetensors
pt hints "$FX/hints.safetensors" 4 1 8 8 0.5
# fresh_run DIR [ARGS...]: a copy of the finished ControlNet run (checkpoints at 2, 4, 6) in DIR.
fresh_run() { rm -rf "$1"; mkdir -p "$(dirname "$1")"; cp -a "$FX/cn" "$1"; }
# ctrain OUT ARGS...: the tiny ControlNet training command (as an array in CMD).
CT=("$CN" train-controlnet "${TINY[@]}" --base "$BASE" --batch-size 8)
BT=("$CN" train-base "${TINY[@]}" --batch-size 8)
echo "fixtures ready ($(( $(date +%s) - T0 )) s)"

# ---------------------------------------------------------------------------------------------------------------
# Class 1: memory limits. Every command under ulimit -v must run, or end with a clear message (exit < 128).
# ---------------------------------------------------------------------------------------------------------------
# ulim KB CMD...: CMD under `ulimit -v KB`.
printf '#!/usr/bin/env bash\nulimit -v "$1" || exit 99\nshift\nexec "$@"\n' >"$SCR/ulim"; chmod +x "$SCR/ulim"
ulim() { "$SCR/ulim" "$@"; }
# (run and simple call commands through `timeout`, which cannot call shell functions: use "$SCR/ulim" there)
MEM_RE='memory|ulimit|address space|--batch-size|--config|allocat|GB|MB'
for kb in 16000000 4000000 1500000 500000; do
    simple 20 okref "$MEM_RE" "mem-sample-mnist-$kb" mem "sample (mnist base, 4 samples) under ulimit -v $kb" -- \
        "$SCR/ulim" "$kb" "$CN" sample --base "$MNIST_BASE" --count 4 --steps 2 --grid "$SCR/p/mem-s-$kb.png" --data-dir "$DATA_DIR"
    simple 20 okref "$MEM_RE" "mem-sample-ctrl-$kb" mem "sample with a ControlNet and held-out hints under ulimit -v $kb" -- \
        "$SCR/ulim" "$kb" "$CN" sample --base "$BASE" --control "$CTRL" --hints-from test --count 4 --steps 2 \
        --grid "$SCR/p/mem-sc-$kb.png" --out "$SCR/p/mem-sc-$kb.safetensors" --data-dir "$DATA_DIR"
    simple 20 okref "$MEM_RE" "mem-eval-$kb" mem "eval under ulimit -v $kb" -- \
        "$SCR/ulim" "$kb" "$CN" eval --base "$BASE" --control "$CTRL" --count 4 --steps 2 --data-dir "$DATA_DIR" \
        --json "$SCR/p/mem-e-$kb.json" --grid "$SCR/p/mem-e-$kb.png"
    simple 20 okref "$MEM_RE" "mem-train-base-tiny-$kb" mem "train-base tiny under ulimit -v $kb" -- \
        "$SCR/ulim" "$kb" "${BT[@]}" --max-steps 2 --out "$SCR/p/mem-tb-$kb"
    simple 20 okref "$MEM_RE" "mem-train-base-mnist-$kb" mem "train-base mnist (batch 4, 1 step) under ulimit -v $kb" -- \
        "$SCR/ulim" "$kb" "$CN" train-base --data-dir "$DATA_DIR" --batch-size 4 --max-steps 1 --out "$SCR/p/mem-tbm-$kb"
    simple 20 okref "$MEM_RE" "mem-train-cn-tiny-$kb" mem "train-controlnet tiny with checkpoint+preview under ulimit -v $kb" -- \
        "$SCR/ulim" "$kb" "${CT[@]}" --max-steps 2 --checkpoint-every 1 --validation-steps 2 --validation-count 4 --out "$SCR/p/mem-tc-$kb"
    simple 20 okref "$MEM_RE" "mem-train-cn-mnist-$kb" mem "train-controlnet mnist (batch 4, 1 step) under ulimit -v $kb" -- \
        "$SCR/ulim" "$kb" "$CN" train-controlnet --base "$MNIST_BASE" --data-dir "$DATA_DIR" --batch-size 4 --max-steps 1 --out "$SCR/p/mem-tcm-$kb"
    simple 20 okref "$MEM_RE" "mem-info-$kb" mem "info --config mnist under ulimit -v $kb" -- \
        "$SCR/ulim" "$kb" "$CN" info --config mnist
    simple 20 okref "$MEM_RE" "mem-bench-$kb" mem "bench tiny under ulimit -v $kb" -- \
        "$SCR/ulim" "$kb" "$CN" bench --config tiny --batch-size 4 --steps 1 --warmup 0
    simple 20 okref "$MEM_RE" "mem-bench-mnist-$kb" mem "bench mnist base mode batch 8 under ulimit -v $kb" -- \
        "$SCR/ulim" "$kb" "$CN" bench --mode base --config mnist --batch-size 8 --steps 1 --warmup 0 --no-profile
    simple 20 okref "$MEM_RE" "mem-export-$kb" mem "export under ulimit -v $kb" -- \
        "$SCR/ulim" "$kb" "$CN" export "$FX/cn/checkpoints/step-00000006" --out "$SCR/p/mem-x-$kb.safetensors"
    simple 20 okref "$MEM_RE" "mem-diff-$kb" mem "diff-weights of the mnist base with itself under ulimit -v $kb" -- \
        "$SCR/ulim" "$kb" "$CN" diff-weights "$MNIST_BASE" "$MNIST_BASE"
done
# The batch sizes a limit cannot hold must be refused with the batch that would fit.
simple 120 refuse '--batch-size' mem-mnist-batch-4096-1.5g mem "train-controlnet mnist batch 4096 under ulimit -v 1.5 GB refused naming --batch-size" -- \
    "$SCR/ulim" 1500000 "$CN" train-controlnet --base "$MNIST_BASE" --data-dir "$DATA_DIR" --batch-size 4096 --max-steps 1 --out "$SCR/p/mem-b4096"
simple 120 refuse '--batch-size' mem-mnist-batch-65536 mem "train-base mnist batch 65536 (no limit) refused naming --batch-size" -- \
    "$CN" train-base --data-dir "$DATA_DIR" --batch-size 65536 --max-steps 1 --out "$SCR/p/mem-b65536"
simple 20 okref "$MEM_RE" mem-sample-batch-huge mem "sample mnist --batch-size 100000 --count 2 under ulimit -v 4 GB" -- \
    "$SCR/ulim" 4000000 "$CN" sample --base "$MNIST_BASE" --count 2 --steps 1 --batch-size 100000 --grid "$SCR/p/mem-sbh.png" --data-dir "$DATA_DIR"
simple 20 okref "$MEM_RE|--count" mem-sample-count-1e8 mem "sample tiny --count 100000000 (25.6 GB of images) under ulimit -v 1.5 GB: refused" -- \
    "$SCR/ulim" 1500000 "$CN" sample --base "$BASE" --count 100000000 --steps 1 --grid "$SCR/p/mem-sc1e8.png" --data-dir "$DATA_DIR"
simple 20 okref "$MEM_RE" mem-bench-batch-4096 mem "bench mnist --batch-size 4096 under ulimit -v 1.5 GB" -- \
    "$SCR/ulim" 1500000 "$CN" bench --config mnist --batch-size 4096 --steps 1 --warmup 0
simple 20 okref "$MEM_RE" mem-eval-batch-huge mem "eval --batch-size 1000000 under ulimit -v 1.5 GB" -- \
    "$SCR/ulim" 1500000 "$CN" eval --base "$BASE" --control "$CTRL" --count 4 --steps 1 --batch-size 1000000 --data-dir "$DATA_DIR"
simple 20 okref "$MEM_RE" mem-2rank-500m mem "mpirun np 2 train-controlnet tiny, each rank under ulimit -v 500 MB" -- \
    "$SCR/ulim" 500000 "${MPI[@]}" -np 2 "${CT[@]}" --max-steps 2 --checkpoint-every 1 --out "$SCR/p/mem-np2"
simple 20 okref "$MEM_RE" mem-2rank-mnist-1.5g mem "mpirun np 2 train-controlnet mnist batch 512 under ulimit -v 1.5 GB" -- \
    "$SCR/ulim" 1500000 "${MPI[@]}" -np 2 "$CN" train-controlnet --base "$MNIST_BASE" --data-dir "$DATA_DIR" --batch-size 512 --max-steps 1 --out "$SCR/p/mem-np2m"

# ---------------------------------------------------------------------------------------------------------------
# Class 3: crashes that must be clear errors. Every numeric option of every command with NaN, infinities, negative,
# zero, huge and malformed values: each is refused naming the option, or (where the value is legal) runs.
# ---------------------------------------------------------------------------------------------------------------
n=0
# Training options: OPTION VALUE EXPECT (refuse | okref). okref: legal values that must run or be refused by name.
TRAIN_NUMERIC=(
    "--lr nan refuse" "--lr inf refuse" "--lr -inf refuse" "--lr -1e-3 refuse" "--lr 0 refuse" "--lr 1e300 okref"
    "--lr 1e-320 okref" "--lr abc refuse" "--lr '' refuse"
    "--weight-decay nan refuse" "--weight-decay inf refuse" "--weight-decay -0.5 refuse" "--weight-decay 1e300 okref"
    "--max-grad-norm nan refuse" "--max-grad-norm inf refuse" "--max-grad-norm -1 refuse" "--max-grad-norm 0 ok"
    "--max-grad-norm 1e-300 okref" "--max-grad-norm 1e300 okref"
    "--min-lr-fraction nan refuse" "--min-lr-fraction -0.1 refuse" "--min-lr-fraction 1.5 refuse" "--min-lr-fraction inf refuse"
    "--epochs nan refuse" "--epochs inf refuse" "--epochs -1 refuse" "--epochs 0 refuse" "--epochs 1e12 refuse"
    "--epochs 1e-9 okref"
    "--prompt-dropout nan refuse" "--prompt-dropout 1 refuse" "--prompt-dropout -0.1 refuse" "--prompt-dropout 0.5 refuse"
    "--batch-size 0 refuse" "--batch-size -8 refuse" "--batch-size 9223372036854775807 refuse"
    "--batch-size 9223372036854775808 refuse" "--batch-size 1e3 refuse" "--batch-size 4001 okref" "--batch-size 65536 okref"
    "--grad-accum 0 refuse" "--grad-accum -1 refuse" "--grad-accum 1000000000 refuse" "--grad-accum 4097 refuse"
    "--simulate-ranks 0 refuse" "--simulate-ranks -2 refuse" "--simulate-ranks 1000000 refuse" "--simulate-ranks 600 okref"
    "--log-every 0 refuse" "--log-every -1 refuse" "--log-every 9223372036854775807 refuse"
    "--checksum-every 0 refuse" "--checksum-every -5 refuse" "--checksum-every 99999999999 refuse"
    "--checkpoint-every 0 refuse" "--checkpoint-every -1 refuse" "--checkpoint-every 9223372036854775807 refuse"
    "--checkpoints-total-limit 0 refuse" "--checkpoints-total-limit -1 refuse"
    "--validation-steps 0 refuse" "--validation-steps -3 refuse" "--validation-count 0 refuse" "--validation-count -1 refuse"
    "--validation-count 100000 refuse" "--validation-count 5000 okref"
    "--max-steps 0 refuse" "--max-steps -1 refuse" "--max-steps 9223372036854775807 refuse"
    "--warmup-steps -1 refuse" "--warmup-steps 9223372036854775807 refuse" "--warmup-steps 1000000 okref"
    "--seed -1 refuse" "--seed 18446744073709551616 refuse" "--seed 18446744073709551615 okref" "--seed nan refuse"
)
for spec in "${TRAIN_NUMERIC[@]}"; do
    eval "set -- $spec"
    opt=$1 val=$2 expect=$3
    n=$((n + 1))
    extra=(--max-steps 2)
    case $opt in --max-steps|--epochs) extra=() ;; esac
    [ "$opt" = --epochs ] && [ "$val" = 1e-9 ] && extra=()
    [ "$opt" = --validation-count ] && extra+=(--validation-steps 2)
    re=$opt; case $opt in --simulate-ranks|--validation-count) re="$opt|--batch-size|held-out|test" ;; esac
    for mode in cn base; do
        if [ $mode = cn ]; then cmd=("${CT[@]}"); w=controlnet.safetensors; else cmd=("${BT[@]}"); w=unet.safetensors; fi
        probe "input-train-$mode-$n" input "train-$mode $opt '$val'" || continue
        # --batch-size and --simulate-ranks come last so that they override the shared --batch-size 8.
        runc 120 "${cmd[@]}" "${extra[@]}" "$opt" "$val" --out "$SCR/p/input-train-$mode-$n"
        case $expect in ok) want_ok ;; refuse) want_refused "$re" ;; okref) want_ok_or_refused "$re" ;; esac
        # A run that completes must leave finite weights (the tool refuses non-finite weight files as inputs).
        wf=$SCR/p/input-train-$mode-$n/$w
        if [ "$RC" = 0 ] && [ -f "$wf" ]; then
            nf=$("$CN" diff-weights "$wf" "$wf" 2>/dev/null | python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["non_finite_values"])' 2>/dev/null)
            [ "${nf:-x}" = 0 ] || bad "exit 0 but $w holds ${nf:-?} non-finite values"
        fi
        end_probe
    done
done
# Generation options (sample and eval).
GEN_NUMERIC=(
    "--steps 0 refuse" "--steps -1 refuse" "--steps 1001 refuse" "--steps 9223372036854775807 refuse" "--steps nan refuse"
    "--guidance-start nan refuse" "--guidance-start -0.1 refuse" "--guidance-end 1.5 refuse" "--guidance-end nan refuse"
    "--guidance-end inf refuse" "--cfg-scale nan refuse" "--cfg-scale inf refuse" "--cfg-scale -inf refuse"
    "--cfg-scale 1e39 refuse" "--cfg-scale 3e38 okref" "--cfg-scale -5 okref"
    "--seed -1 refuse" "--seed 18446744073709551615 ok" "--seed 1e3 refuse"
    "--batch-size 0 refuse" "--batch-size -1 refuse" "--batch-size 9223372036854775807 okref"
)
for spec in "${GEN_NUMERIC[@]}"; do
    eval "set -- $spec"
    opt=$1 val=$2 expect=$3
    n=$((n + 1))
    simple 120 "$expect" "$opt" "input-sample-$n" input "sample $opt '$val'" -- \
        "$CN" sample --base "$BASE" --control "$CTRL" --hints-from test --count 2 --steps 2 --data-dir "$DATA_DIR" \
        "$opt" "$val" --grid "$SCR/p/input-sample-$n.png"
    simple 120 "$expect" "$opt" "input-eval-$n" input "eval $opt '$val'" -- \
        "$CN" eval --base "$BASE" --control "$CTRL" --count 2 --steps 2 --data-dir "$DATA_DIR" --skip-base-reference \
        "$opt" "$val"
done
# sample's own counts.
SAMPLE_COUNTS=(
    "--count 0 refuse" "--count -1 refuse" "--count 9223372036854775807 refuse" "--count 100000000 refuse"
    "--columns 0 refuse" "--columns -3 refuse" "--columns 9223372036854775807 okref" "--columns 1000000 okref"
    "--label -1 refuse" "--label 9223372036854775807 refuse"
)
for spec in "${SAMPLE_COUNTS[@]}"; do
    eval "set -- $spec"
    opt=$1 val=$2 expect=$3
    n=$((n + 1))
    simple 60 "$expect" "$opt" "input-sample-$n" input "sample (base alone) $opt '$val'" -- \
        "$CN" sample --base "$BASE" --count 2 --steps 1 --data-dir "$DATA_DIR" "$opt" "$val" --grid "$SCR/p/input-sample-$n.png"
done
simple 120 refuse '--label' input-sample-label-nonclass input "sample --label 1 with an unconditional base refused naming --label" -- \
    "$CN" sample --base "$BASE" --count 2 --steps 1 --label 1 --grid "$SCR/p/input-label.png"
simple 120 refuse '--label' input-sample-label-4-of-3 input "sample --label 4 with a 3-class base refused naming --label" -- \
    "$CN" sample --base "$CBASE" --count 2 --steps 1 --label 4 --grid "$SCR/p/input-label4.png"
simple 120 okref '--count' input-sample-hints-count-huge input "sample --hints-from test --count 10^9 (more than the split holds)" -- \
    "$CN" sample --base "$BASE" --control "$CTRL" --hints-from test --count 1000000000 --steps 1 --batch-size 512 \
    --data-dir "$DATA_DIR" --grid "$SCR/p/input-hc.png"
for val in 0 -1 9223372036854775807 100000000; do
    n=$((n + 1))
    exp=refuse; case $val in 100000000|9223372036854775807) exp=okref ;; esac   # clamped to the test split
    simple 120 "$exp" '--count' "input-eval-count-$n" input "eval --count $val" -- \
        "$CN" eval --base "$BASE" --control "$CTRL" --count "$val" --steps 1 --batch-size 1024 --data-dir "$DATA_DIR" --skip-base-reference
done
# --control FILE:SCALE.
for scale in nan inf -inf 1e39 -1e39 NaN Infinity 0x1p200; do
    n=$((n + 1))
    simple 60 refuse '--control' "input-control-scale-$n" input "sample --control FILE:$scale refused naming --control" -- \
        "$CN" sample --base "$BASE" --control "$CTRL:$scale" --hints-from test --count 2 --steps 1 --data-dir "$DATA_DIR" --grid "$SCR/p/cs-$n.png"
done
for scale in 0 -1 1e30; do
    n=$((n + 1))
    simple 60 okref '--control' "input-control-scale-$n" input "sample --control FILE:$scale (finite) runs" -- \
        "$CN" sample --base "$BASE" --control "$CTRL:$scale" --hints-from test --count 2 --steps 1 --data-dir "$DATA_DIR" --grid "$SCR/p/cs-$n.png"
done
simple 60 refuse '--control' input-control-empty input "sample --control ':2' (no file) refused" -- \
    "$CN" sample --base "$BASE" --control ":2" --hints-from test --count 2 --steps 1 --data-dir "$DATA_DIR" --grid "$SCR/p/cse.png"
# bench, bench-sgemm, comm-check, diff-weights numbers.
BENCH_NUMERIC=(
    "--steps 0 refuse" "--steps -1 refuse" "--steps 1000000000 refuse" "--warmup -1 refuse" "--warmup 1000000000 refuse"
    "--threads 0 refuse" "--threads -1 refuse" "--threads 1000000 okref" "--threads 9223372036854775807 okref"
    "--batch-size 0 refuse" "--batch-size -1 refuse" "--batch-size 9223372036854775807 refuse" "--batch-size 100000000 refuse"
)
for spec in "${BENCH_NUMERIC[@]}"; do
    eval "set -- $spec"
    opt=$1 val=$2 expect=$3
    n=$((n + 1))
    simple 20 "$expect" "$opt" "input-bench-$n" input "bench $opt $val" -- \
        "$CN" bench --config tiny --batch-size 2 --steps 1 --warmup 0 "$opt" "$val"
done
SGEMM_NUMERIC=("--threads 0 refuse" "--threads 1000000 okref" "--repeats 0 refuse" "--repeats 1000000000 refuse"
    "--batch 0 refuse" "--batch 9223372036854775807 refuse" "--batch 100000000 refuse")
for spec in "${SGEMM_NUMERIC[@]}"; do
    eval "set -- $spec"
    opt=$1 val=$2 expect=$3
    n=$((n + 1))
    simple 20 "$expect" "$opt" "input-sgemm-$n" input "bench-sgemm $opt $val" -- \
        "$CN" bench-sgemm --config tiny --repeats 1 --batch 1 "$opt" "$val"
done
COMM_NUMERIC=("--count 0 refuse" "--count -1 refuse" "--count 9223372036854775807 refuse" "--count 100000000000 refuse"
    "--repeats 0 refuse" "--repeats 1000000000000 refuse" "--loop-seconds nan refuse" "--loop-seconds inf refuse"
    "--loop-seconds -1 refuse" "--loop-seconds 1e300 refuse" "--die-after-seconds nan refuse" "--die-after-seconds -1 refuse"
    "--die-rank -1 refuse" "--die-rank 5 refuse")
for spec in "${COMM_NUMERIC[@]}"; do
    eval "set -- $spec"
    opt=$1 val=$2 expect=$3
    n=$((n + 1))
    simple 20 "$expect" "$opt" "input-comm-$n" input "comm-check $opt $val" -- \
        "$CN" comm-check --count 16 --repeats 1 "$opt" "$val"
done
for val in nan -1 -inf; do
    n=$((n + 1))
    simple 30 refuse '--tolerance' "input-diff-tol-$n" input "diff-weights --tolerance $val refused naming --tolerance" -- \
        "$CN" diff-weights "$CTRL" "$CTRL" --tolerance "$val"
done
simple 30 ok '' input-diff-tol-0 input "diff-weights A A --tolerance 0 exits 0" -- "$CN" diff-weights "$CTRL" "$CTRL" --tolerance 0
simple 30 ok '' input-diff-tol-inf input "diff-weights A A --tolerance inf exits 0 (or refuses)" -- "$CN" diff-weights "$CTRL" "$CTRL" --tolerance 1e308

# ---------------------------------------------------------------------------------------------------------------
# Class 2: the run directory belongs to one run.
# ---------------------------------------------------------------------------------------------------------------
# A 2-rank checkpointed run (world size 2), for manifest edits that need two shards.
"${MPI[@]}" -np 2 "${CT[@]}" --max-steps 4 --checkpoint-every 2 --out "$FX/cn2" >"$FX/cn2.log" 2>&1 \
    || { cat "$FX/cn2.log"; echo "cannot train the 2-rank fixture" >&2; }
REUSE_RE='--resume latest.*--overwrite|--overwrite.*--resume latest'
# Reruns into a used --out without --resume: refused naming --resume latest and --overwrite; no file changed.
reuse_case() {   # reuse_case ID DESCRIPTION PREPARE-FUNCTION [TRAIN-ARGS...]
    local id=$1 desc=$2 prep=$3; shift 3
    probe "$id" rundir "$desc" || return 0
    local out=$SCR/p/$id/out
    $prep "$out"
    snap out "$out"
    runc 60 "$@" --max-steps 2 --out "$out"
    want_refused "$REUSE_RE"
    unchanged out
    end_probe
}
prep_complete() { fresh_run "$1"; }
prep_metrics_only() { mkdir -p "$1"; echo '{"step":1,"loss":1}' >"$1/metrics.jsonl"; }
prep_status_only() { mkdir -p "$1"; cp "$FX/cn/status.json" "$1/"; }
prep_ckpt_only() { mkdir -p "$1"; cp -a "$FX/cn/checkpoints" "$1/"; }
prep_weights_only() { mkdir -p "$1"; cp "$CTRL" "$1/"; }
prep_unet_only() { mkdir -p "$1"; cp "$BASE" "$1/unet.safetensors"; }
prep_validation_only() { mkdir -p "$1/validation"; echo x >"$1/validation/step-2.png"; }
prep_incomplete_ckpt() { mkdir -p "$1/checkpoints/step-00000002"; echo partial >"$1/checkpoints/step-00000002/.shard-00000-of-00001.tmp-1"; }
prep_stopped() { fresh_run "$1"; rm "$1/controlnet.safetensors"; }
reuse_case rundir-reuse-complete "train-controlnet into a completed run refused" prep_complete "${CT[@]}"
reuse_case rundir-reuse-metrics "train-controlnet into a dir holding only metrics.jsonl refused" prep_metrics_only "${CT[@]}"
reuse_case rundir-reuse-status "train-controlnet into a dir holding only status.json refused" prep_status_only "${CT[@]}"
reuse_case rundir-reuse-ckpt "train-controlnet into a dir holding only checkpoints/ refused" prep_ckpt_only "${CT[@]}"
reuse_case rundir-reuse-weights "train-controlnet into a dir holding only controlnet.safetensors refused" prep_weights_only "${CT[@]}"
reuse_case rundir-reuse-unet "train-controlnet into a dir holding only unet.safetensors refused" prep_unet_only "${CT[@]}"
reuse_case rundir-reuse-validation "train-controlnet into a dir holding only validation/ refused" prep_validation_only "${CT[@]}"
reuse_case rundir-reuse-incomplete "train-controlnet into a dir holding only an interrupted checkpoint write refused" prep_incomplete_ckpt "${CT[@]}"
reuse_case rundir-reuse-stopped "train-controlnet into a stopped run (no final weights) refused" prep_stopped "${CT[@]}"
reuse_case rundir-reuse-base-complete "train-base into a completed ControlNet run refused" prep_complete "${BT[@]}"
reuse_case rundir-reuse-base-metrics "train-base into a dir holding only metrics.jsonl refused" prep_metrics_only "${BT[@]}"
reuse_case rundir-reuse-np2 "mpirun np 2 train-controlnet into a completed run refused" prep_complete "${MPI[@]}" -np 2 "${CT[@]}"
reuse_case rundir-reuse-sim2 "train-controlnet --simulate-ranks 2 into a completed run refused" prep_complete "${CT[@]}" --simulate-ranks 2
probe rundir-reuse-dotdot rundir "rerun into a completed run spelt ./x/../out refused" && {
    mkdir -p "$SCR/p/rundir-reuse-dotdot/x"; fresh_run "$SCR/p/rundir-reuse-dotdot/out"; snap o "$SCR/p/rundir-reuse-dotdot/out"
    pushd "$SCR/p/rundir-reuse-dotdot" >/dev/null; runc 60 "${CT[@]}" --max-steps 2 --out ./x/../out; popd >/dev/null; want_refused "$REUSE_RE"; unchanged o; end_probe; }
probe rundir-reuse-symlink rundir "rerun into a completed run through a symlinked --out refused" && {
    d=$SCR/p/rundir-reuse-symlink; fresh_run "$d/out"; ln -s "$d/out" "$d/link"; snap o "$d/out"
    runc 60 "${CT[@]}" --max-steps 2 --out "$d/link"; want_refused "$REUSE_RE"; unchanged o; end_probe; }
probe rundir-reuse-trailing-slash rundir "rerun into a completed run spelt out/ refused" && {
    d=$SCR/p/rundir-reuse-trailing-slash; fresh_run "$d/out"; snap o "$d/out"
    runc 60 "${CT[@]}" --max-steps 2 --out "$d/out/"; want_refused "$REUSE_RE"; unchanged o; end_probe; }
probe rundir-empty-ckpt-ok rundir "a dir with only an empty checkpoints/ and validation/ is not a run: training proceeds" && {
    d=$SCR/p/rundir-empty-ckpt-ok; mkdir -p "$d/out/checkpoints" "$d/out/validation"
    runc 60 "${CT[@]}" --max-steps 2 --out "$d/out"; want_ok; end_probe; }
probe rundir-unrelated-files-ok rundir "unrelated files in --out (notes.txt) are kept by a fresh run" && {
    d=$SCR/p/rundir-unrelated-files-ok; mkdir -p "$d/out"; echo keep >"$d/out/notes.txt"
    runc 60 "${CT[@]}" --max-steps 2 --out "$d/out"; want_ok; [ "$(cat "$d/out/notes.txt" 2>/dev/null)" = keep ] || bad "notes.txt lost"; end_probe; }
probe rundir-out-is-file rundir "--out naming an existing file refused naming --out; the file is unchanged" && {
    d=$SCR/p/rundir-out-is-file; mkdir -p "$d"; cp "$CTRL" "$d/f"; snap f "$d/f"
    runc 60 "${CT[@]}" --max-steps 2 --out "$d/f"; want_refused '--out'; unchanged f; end_probe; }
probe rundir-out-dev-null rundir "--out /dev/null refused naming --out" && {
    runc 60 "${CT[@]}" --max-steps 2 --out /dev/null; want_refused '--out'; end_probe; }
probe rundir-out-under-file rundir "--out under a regular file (f/x) refused naming --out" && {
    d=$SCR/p/rundir-out-under-file; mkdir -p "$d"; echo x >"$d/f"
    runc 60 "${CT[@]}" --max-steps 2 --out "$d/f/x"; want_refused '--out'; end_probe; }
probe rundir-out-readonly rundir "--out in a read-only directory (chattr-free: a dir without write bits, as non-root) refused, or (root) runs" && {
    d=$SCR/p/rundir-out-readonly; mkdir -p "$d/ro"; chmod 555 "$d/ro"
    runc 60 "${CT[@]}" --max-steps 2 --out "$d/ro/out"; want_ok_or_refused '--out|permission'; chmod 755 "$d/ro"; end_probe; }
probe rundir-overwrite rundir "--overwrite replaces a completed run and says what it removed; unrelated files survive" && {
    d=$SCR/p/rundir-overwrite; fresh_run "$d/out"; echo keep >"$d/out/notes.txt"
    runc 60 "${CT[@]}" --max-steps 2 --overwrite --out "$d/out"; want_ok; want_msg 'overwrite.*removed'
    [ "$(cat "$d/out/notes.txt" 2>/dev/null)" = keep ] || bad "notes.txt lost"
    [ -d "$d/out/checkpoints/step-00000006" ] && bad "the old checkpoint step-6 survived --overwrite"; end_probe; }
probe rundir-overwrite-resume rundir "--overwrite with --resume latest refused naming --overwrite; nothing changed" && {
    d=$SCR/p/rundir-overwrite-resume; fresh_run "$d/out"; snap o "$d/out"
    runc 60 "${CT[@]}" --max-steps 8 --overwrite --resume latest --out "$d/out"; want_refused '--overwrite'; unchanged o; end_probe; }
probe rundir-overwrite-bad-input rundir "--overwrite with a missing --base refuses before removing anything" && {
    d=$SCR/p/rundir-overwrite-bad-input; fresh_run "$d/out"; snap o "$d/out"
    runc 60 "$CN" train-controlnet "${TINY[@]}" --base "$d/missing.safetensors" --max-steps 2 --overwrite --out "$d/out"
    want_refused 'missing.safetensors|--base'; unchanged o; end_probe; }
probe rundir-overwrite-bad-option rundir "--overwrite with --lr nan refuses before removing anything" && {
    d=$SCR/p/rundir-overwrite-bad-option; fresh_run "$d/out"; snap o "$d/out"
    runc 60 "${CT[@]}" --max-steps 2 --lr nan --overwrite --out "$d/out"; want_refused '--lr'; unchanged o; end_probe; }
probe rundir-overwrite-bad-config rundir "--overwrite with another config (base mismatch) refuses before removing anything" && {
    d=$SCR/p/rundir-overwrite-bad-config; fresh_run "$d/out"; snap o "$d/out"
    runc 60 "$CN" train-controlnet --config mnist --data-dir "$DATA_DIR" --base "$BASE" --max-steps 2 --overwrite --out "$d/out"
    want_refused 'config|base'; unchanged o; end_probe; }
probe rundir-overwrite-mem rundir "--overwrite with a batch that cannot fit (ulimit) refuses before removing anything" && {
    d=$SCR/p/rundir-overwrite-mem; fresh_run "$d/out"; snap o "$d/out"
    runc 60 "$SCR/ulim" 1500000 "$CN" train-controlnet --base "$MNIST_BASE" --data-dir "$DATA_DIR" --batch-size 8192 --max-steps 1 --overwrite --out "$d/out"
    want_refused '--batch-size'; unchanged o; end_probe; }

# Concurrent runs on one --out: the second is refused naming the holder's host and pid; the first is undisturbed.
probe rundir-lock-setup rundir "a long background run holds the lock (setup)" && {
    LOCKD=$SCR/p/rundir-lock-setup/out
    "${CT[@]}" --max-steps 1000000 --log-every 50 --out "$LOCKD" >"$SCR/logs/lock-holder.log" 2>&1 &
    LOCK_PID=$!; BG_PIDS+=("$LOCK_PID")
    for _ in $(seq 1 200); do [ -s "$LOCKD/metrics.jsonl" ] && break; sleep 0.1; done
    [ -s "$LOCKD/metrics.jsonl" ] || bad "the holder did not start"
    LOG=$SCR/logs/lock-holder.log; end_probe; }
LOCK_RE="in use.*(host|pid)"
lock_case() {   # lock_case ID DESCRIPTION CMD... (the --out is given by the caller)
    local id=$1 desc=$2; shift 2
    probe "$id" rundir "$desc" || return 0
    runc 60 "$@"
    want_refused "$LOCK_RE"; want_msg "pid ${LOCK_PID:-x}"
    kill -0 "${LOCK_PID:-0}" 2>/dev/null || bad "the first run died"
    end_probe
}
if [ -n "${LOCK_PID:-}" ]; then
    lock_case rundir-lock-second "a second train-controlnet on the same --out refused naming host and pid" "${CT[@]}" --max-steps 2 --out "$LOCKD"
    lock_case rundir-lock-resume "a second run with --resume latest on the same --out refused" "${CT[@]}" --max-steps 2 --resume latest --out "$LOCKD"
    lock_case rundir-lock-overwrite "a second run with --overwrite on the same --out refused, deleting nothing" "${CT[@]}" --max-steps 2 --overwrite --out "$LOCKD"
    lock_case rundir-lock-base "a train-base on the same --out refused" "${BT[@]}" --max-steps 2 --out "$LOCKD"
    lock_case rundir-lock-dotdot "a second run spelt OUT/../out refused" "${CT[@]}" --max-steps 2 --out "$LOCKD/../out"
    ln -s "$LOCKD" "$SCR/p/lock-link"
    lock_case rundir-lock-symlink "a second run through a symlink to --out refused" "${CT[@]}" --max-steps 2 --out "$SCR/p/lock-link"
    lock_case rundir-lock-np2 "a second run under mpirun np 2 refused" "${MPI[@]}" -np 2 "${CT[@]}" --max-steps 2 --out "$LOCKD"
    probe rundir-lock-holder-ok rundir "the lock holder stops on SIGTERM with a checkpoint and status stopped after the refused intruders" && {
        kill -TERM "$LOCK_PID"; wait "$LOCK_PID"; RC=$?; LOG=$SCR/logs/lock-holder.log
        want_ok; st=$(pt status "$LOCKD" 2>/dev/null); [[ "$st" == stopped* ]] || bad "status.json says '$st', not stopped"
        ls "$LOCKD/checkpoints" 2>/dev/null | grep -q step- || bad "no checkpoint written on stop"
        pt metrics-valid "$LOCKD/metrics.jsonl" >/dev/null || bad "metrics.jsonl has an invalid line"
        end_probe; }
fi

# Outputs that are inputs, for every command and output option, spelt directly, through ./x/../, symlinks and hard
# links: refused naming the option; the input unchanged.
io_case() {   # io_case ID DESCRIPTION OPTION-REGEX FILE-TO-PROTECT CMD...
    local id=$1 desc=$2 re=$3 file=$4; shift 4
    probe "$id" rundir "$desc" || return 0
    snap in "$file"
    runc 60 "$@"
    want_refused "$re"
    unchanged in
    end_probe
}
IO=$SCR/p/io
mkdir -p "$IO/x"
cp "$BASE" "$IO/base.safetensors"; cp "$CTRL" "$IO/ctrl.safetensors"; cp "$FX/hints.safetensors" "$IO/hints.safetensors"
ln -s "$IO/base.safetensors" "$IO/base-link.safetensors"; ln "$IO/base.safetensors" "$IO/base-hard.safetensors"
ln -s "$IO/ctrl.safetensors" "$IO/ctrl-link.safetensors"; ln "$IO/ctrl.safetensors" "$IO/ctrl-hard.safetensors"
ln "$IO/hints.safetensors" "$IO/hints-hard.safetensors"
ln -s "$IO" "$IO/dirlink"
SAMPLE_IO=("$CN" sample --base "$IO/base.safetensors" --control "$IO/ctrl.safetensors" --hints "$IO/hints.safetensors" --count 2 --steps 1)
for spelling in "base.safetensors" "x/../base.safetensors" "base-link.safetensors" "base-hard.safetensors" "dirlink/base.safetensors" "./base.safetensors"; do
    n=$((n + 1))
    io_case "rundir-io-sample-grid-base-$n" "sample --grid $spelling (the --base) refused" '--grid' "$IO/base.safetensors" \
        "${SAMPLE_IO[@]}" --grid "$IO/$spelling"
    io_case "rundir-io-sample-out-base-$n" "sample --out $spelling (the --base) refused" '--out' "$IO/base.safetensors" \
        "${SAMPLE_IO[@]}" --grid "$IO/g-$n.png" --out "$IO/$spelling"
done
for spelling in "ctrl.safetensors" "x/../ctrl.safetensors" "ctrl-link.safetensors" "ctrl-hard.safetensors"; do
    n=$((n + 1))
    io_case "rundir-io-sample-out-ctrl-$n" "sample --out $spelling (the --control) refused" '--out' "$IO/ctrl.safetensors" \
        "${SAMPLE_IO[@]}" --grid "$IO/g-$n.png" --out "$IO/$spelling"
    io_case "rundir-io-eval-json-ctrl-$n" "eval --json $spelling (the --control) refused" '--json' "$IO/ctrl.safetensors" \
        "$CN" eval --base "$IO/base.safetensors" --control "$IO/ctrl.safetensors:0.5" --count 2 --steps 1 --data-dir "$DATA_DIR" --json "$IO/$spelling"
    io_case "rundir-io-eval-grid-ctrl-$n" "eval --grid $spelling (the --control) refused" '--grid' "$IO/ctrl.safetensors" \
        "$CN" eval --base "$IO/base.safetensors" --control "$IO/ctrl.safetensors" --count 2 --steps 1 --data-dir "$DATA_DIR" --grid "$IO/$spelling"
done
io_case rundir-io-eval-json-base "eval --json = --base refused" '--json' "$IO/base.safetensors" \
    "$CN" eval --base "$IO/base.safetensors" --control "$IO/ctrl.safetensors" --count 2 --steps 1 --data-dir "$DATA_DIR" --json "$IO/base-hard.safetensors"
io_case rundir-io-sample-grid-hints "sample --grid = --hints (hard link) refused" '--grid' "$IO/hints.safetensors" \
    "${SAMPLE_IO[@]}" --grid "$IO/hints-hard.safetensors"
io_case rundir-io-sample-out-hints "sample --out = --hints refused" '--out' "$IO/hints.safetensors" \
    "${SAMPLE_IO[@]}" --grid "$IO/g-h.png" --out "$IO/x/../hints.safetensors"
probe rundir-io-sample-grid-eq-out rundir "sample --grid and --out the same file refused naming one of them" && {
    runc 60 "${SAMPLE_IO[@]}" --grid "$IO/same.out" --out "$IO/x/../same.out"; want_refused '--out|--grid'
    [ -e "$IO/same.out" ] && bad "the file was written anyway"; end_probe; }
probe rundir-io-eval-json-eq-grid rundir "eval --json and --grid the same file refused" && {
    runc 60 "$CN" eval --base "$IO/base.safetensors" --control "$IO/ctrl.safetensors" --count 2 --steps 1 --data-dir "$DATA_DIR" --json "$IO/same2" --grid "$IO/same2"
    want_refused '--json|--grid'; end_probe; }
io_case rundir-io-sample-grid-second-control "sample --grid = the second of two --control files refused" '--grid' "$IO/ctrl.safetensors" \
    "$CN" sample --base "$IO/base.safetensors" --control "$CTRL" --control "$IO/ctrl.safetensors:0.5" --hints "$IO/hints.safetensors" --count 2 --steps 1 --grid "$IO/ctrl-link.safetensors"
io_case rundir-io-sample-grid-control-scale "sample --grid = --control given as FILE:SCALE refused" '--grid' "$IO/ctrl.safetensors" \
    "$CN" sample --base "$IO/base.safetensors" --control "$IO/ctrl.safetensors:2" --hints "$IO/hints.safetensors" --count 2 --steps 1 --grid "$IO/ctrl.safetensors"
cp "$CLS012" "$IO/data.csv"
io_case rundir-io-sample-grid-data "sample --grid = the --data file (CSV) refused" '--grid' "$IO/data.csv" \
    "$CN" sample --base "$IO/base.safetensors" --control "$IO/ctrl.safetensors" --hints-from test --data "$IO/data.csv" --count 2 --steps 1 --grid "$IO/data.csv"
cp "$CLS012" "$IO/data2.csv"
io_case rundir-io-eval-json-data "eval --json = the --data file (CSV, via x/../) refused" '--json' "$IO/data2.csv" \
    "$CN" eval --base "$IO/base.safetensors" --control "$IO/ctrl.safetensors" --data "$IO/data2.csv" --count 2 --steps 1 --json "$IO/x/../data2.csv"
cp "$CLS012" "$IO/data3.csv"
io_case rundir-io-sample-out-data "sample --out = the --data file refused" '--out' "$IO/data3.csv" \
    "$CN" sample --base "$IO/base.safetensors" --control "$IO/ctrl.safetensors" --hints-from test --data "$IO/data3.csv" --count 2 --steps 1 --grid "$IO/g-d3.png" --out "$IO/data3.csv"
# export.
EX=$SCR/p/ex; fresh_run "$EX/run"; S6=$EX/run/checkpoints/step-00000006
io_case rundir-io-export-shard "export --out = the checkpoint's shard refused" '--out' "$S6" \
    "$CN" export "$S6" --out "$S6/shard-00000-of-00001.safetensors"
io_case rundir-io-export-manifest "export --out = the checkpoint's manifest refused" '--out' "$S6" \
    "$CN" export "$S6" --out "$S6/manifest.json"
io_case rundir-io-export-newfile "export --out = a new file inside the checkpoint directory refused" '--out' "$S6" \
    "$CN" export "$S6" --out "$S6/exported.safetensors"
io_case rundir-io-export-latest "export latest:OUT --out = the newest shard (spelt via ../) refused" '--out' "$EX/run" \
    "$CN" export "latest:$EX/run" --out "$EX/run/checkpoints/../checkpoints/step-00000006/shard-00000-of-00001.safetensors"
ln "$S6/shard-00000-of-00001.safetensors" "$EX/shard-hard.safetensors"
io_case rundir-io-export-hardlink "export --out = a hard link to the checkpoint's shard refused" '--out' "$S6" \
    "$CN" export "$S6" --out "$EX/shard-hard.safetensors"
io_case rundir-io-export-dir "export --out = the checkpoint directory itself refused" '--out' "$S6" \
    "$CN" export "$S6" --out "$S6"
probe rundir-io-export-elsewhere-ok rundir "export into a fresh file beside the run works and the result diff-weights 0 vs controlnet.safetensors" && {
    runc 60 "$CN" export "$S6" --out "$EX/exp.safetensors"; want_ok
    run 30 "$CN" diff-weights "$EX/exp.safetensors" "$EX/run/controlnet.safetensors" --tolerance 0; want_ok; end_probe; }
# train: --out against --base, --init-from, --data, --config.
TR=$SCR/p/tr
probe rundir-io-init-from-unet rundir "train-base --init-from OUT/unet.safetensors --overwrite --out OUT refused; OUT unchanged" && {
    rm -rf "$TR/a"; cp -a "$FX/base" "$TR/a" 2>/dev/null || { mkdir -p "$TR"; cp -a "$FX/base" "$TR/a"; }; snap o "$TR/a"
    runc 60 "${BT[@]}" --max-steps 2 --init-from "$TR/a/unet.safetensors" --overwrite --out "$TR/a"; want_refused '--init-from|--out'; unchanged o; end_probe; }
probe rundir-io-init-from-hardlink rundir "train-base --init-from (hard link to OUT/unet.safetensors) --overwrite refused; OUT unchanged" && {
    rm -rf "$TR/b"; cp -a "$FX/base" "$TR/b"; ln "$TR/b/unet.safetensors" "$TR/b-unet-hard"; snap o "$TR/b"
    runc 60 "${BT[@]}" --max-steps 2 --init-from "$TR/b-unet-hard" --overwrite --out "$TR/b"; want_refused '--init-from|--out'; unchanged o; end_probe; }
probe rundir-io-init-from-symlink-resume rundir "train-base --init-from (symlink to OUT/unet.safetensors) --resume latest refused" && {
    rm -rf "$TR/c"; cp -a "$FX/bck" "$TR/c"; ln -s "$TR/c/unet.safetensors" "$TR/c-unet-link"; snap o "$TR/c"
    runc 60 "${BT[@]}" --max-steps 6 --init-from "$TR/c-unet-link" --resume latest --out "$TR/c"; want_refused '--init-from|--out'; unchanged o; end_probe; }
probe rundir-io-base-in-out rundir "train-controlnet --base OUT/unet.safetensors --overwrite refused; OUT unchanged" && {
    rm -rf "$TR/d"; cp -a "$FX/base" "$TR/d"; snap o "$TR/d"
    runc 60 "${CT[@]}" --max-steps 2 --base "$TR/d/unet.safetensors" --overwrite --out "$TR/d"; want_refused '--base|--out'; unchanged o; end_probe; }
probe rundir-io-base-in-out-dotdot rundir "train-controlnet --base OUT/x/../unet.safetensors (plain rerun, no --overwrite) refused" && {
    rm -rf "$TR/e"; cp -a "$FX/base" "$TR/e"; mkdir -p "$TR/e/x"; snap o "$TR/e"
    runc 60 "$CN" train-controlnet "${TINY[@]}" --batch-size 8 --max-steps 2 --base "$TR/e/x/../unet.safetensors" --overwrite --out "$TR/e"; want_refused '--base|--out'; unchanged o; end_probe; }
probe rundir-io-base-in-ckpt rundir "train-controlnet --base inside OUT/checkpoints/ --overwrite refused" && {
    rm -rf "$TR/f"; fresh_run "$TR/f"; cp "$BASE" "$TR/f/checkpoints/base-copy.safetensors"; snap o "$TR/f"
    runc 60 "${CT[@]}" --max-steps 2 --base "$TR/f/checkpoints/base-copy.safetensors" --overwrite --out "$TR/f"; want_refused '--base|--out'; unchanged o; end_probe; }
probe rundir-io-base-in-validation rundir "train-controlnet --base inside OUT/validation/ --overwrite refused" && {
    rm -rf "$TR/g"; fresh_run "$TR/g"; mkdir -p "$TR/g/validation"; cp "$BASE" "$TR/g/validation/b.safetensors"; snap o "$TR/g"
    runc 60 "${CT[@]}" --max-steps 2 --base "$TR/g/validation/b.safetensors" --overwrite --out "$TR/g"; want_refused '--base|--out'; unchanged o; end_probe; }
probe rundir-io-data-in-out rundir "train --data OUT/metrics.jsonl (as CSV) --overwrite refused, or refused as data; OUT unchanged" && {
    rm -rf "$TR/h"; fresh_run "$TR/h"; snap o "$TR/h"
    runc 60 "$CN" train-controlnet --config tiny --resize --base "$BASE" --data "$TR/h/metrics.jsonl" --max-steps 2 --overwrite --out "$TR/h"; want_fail; unchanged o; end_probe; }
probe rundir-io-data-csv-in-out rundir "train --data OUT/metrics.csv (a real data file kept in OUT) --overwrite runs and keeps it" && {
    rm -rf "$TR/i"; fresh_run "$TR/i"; cp "$CLS012" "$TR/i/data.csv"; snap o "$TR/i/data.csv"
    runc 60 "$CN" train-controlnet --config tiny --resize --base "$BASE" --data "$TR/i/data.csv" --batch-size 8 --max-steps 2 --overwrite --out "$TR/i"; want_ok; unchanged o; end_probe; }
probe rundir-io-config-in-out rundir "train --config OUT/status.json --overwrite refused (not a config); OUT unchanged" && {
    rm -rf "$TR/j"; fresh_run "$TR/j"; snap o "$TR/j"
    runc 60 "$CN" train-controlnet --config "$TR/j/status.json" --resize --data-dir "$DATA_DIR" --base "$BASE" --max-steps 2 --overwrite --out "$TR/j"; want_fail; unchanged o; end_probe; }
probe rundir-io-out-is-base-dir rundir "train-controlnet --out = the directory holding --base (a finished base run) without --overwrite refused" && {
    rm -rf "$TR/k"; cp -a "$FX/base" "$TR/k"; snap o "$TR/k"
    runc 60 "${CT[@]}" --max-steps 2 --base "$TR/k/unet.safetensors" --out "$TR/k"; want_refused '--base|--out|--overwrite'; unchanged o; end_probe; }

# --resume latest when every committed checkpoint is invalid: refused naming each; no file changed.
invalid_all() {   # invalid_all ID DESCRIPTION BREAK-FUNCTION (called with each step directory)
    local id=$1 desc=$2 breaker=$3
    probe "$id" rundir "$desc" || return 0
    local out=$SCR/p/$id/out s
    fresh_run "$out"; rm -f "$out/controlnet.safetensors"
    for s in "$out"/checkpoints/step-*; do $breaker "$s"; done
    snap o "$out"
    runc 60 "${CT[@]}" --max-steps 8 --checkpoint-every 2 --resume latest --out "$out"
    want_refused 'no valid checkpoint'
    for s in 00000002 00000004 00000006; do want_msg "step-$s"; done
    unchanged o
    end_probe
}
brk_flip_shard() { printf '\x01' | dd of="$1/shard-00000-of-00001.safetensors" bs=1 seek=300 conv=notrunc 2>/dev/null; }
brk_truncate_shard() { truncate -s 100 "$1/shard-00000-of-00001.safetensors"; }
brk_delete_shard() { rm "$1/shard-00000-of-00001.safetensors"; }
brk_empty_manifest() { : >"$1/manifest.json"; }
brk_garbage_manifest() { echo 'not json' >"$1/manifest.json"; }
brk_manifest_dir() { rm "$1/manifest.json"; mkdir "$1/manifest.json"; }
brk_edit_step() { pt reseal "$1/manifest.json" raw '"step" : ([0-9]+),\n  "trainable_count"' '"step" : 1\1,\n  "trainable_count"'; }
brk_nan_shard() { pt poison "$1/shard-00000-of-00001.safetensors" "$1/shard-00000-of-00001.safetensors" nan params >/dev/null;
    h=$(sha256sum "$1/shard-00000-of-00001.safetensors" | cut -d' ' -f1); b=$(stat -c %s "$1/shard-00000-of-00001.safetensors")
    pt reseal "$1/manifest.json" seal '"sha256" : "[0-9a-f]+"' "\"sha256\" : \"$h\"" '"bytes" : [0-9]+' "\"bytes\" : $b"; }
brk_shard_dir() { rm "$1/shard-00000-of-00001.safetensors"; mkdir "$1/shard-00000-of-00001.safetensors"; }
brk_mixed() { case $1 in *02) brk_flip_shard "$1" ;; *04) brk_garbage_manifest "$1" ;; *) brk_truncate_shard "$1" ;; esac; }
invalid_all rundir-invalid-flip "--resume latest with every shard bit-flipped refused naming each checkpoint" brk_flip_shard
invalid_all rundir-invalid-truncate "--resume latest with every shard truncated refused naming each" brk_truncate_shard
invalid_all rundir-invalid-missing "--resume latest with every shard deleted refused naming each" brk_delete_shard
invalid_all rundir-invalid-empty-manifest "--resume latest with every manifest empty refused naming each" brk_empty_manifest
invalid_all rundir-invalid-garbage-manifest "--resume latest with every manifest not JSON refused naming each" brk_garbage_manifest
invalid_all rundir-invalid-manifest-dir "--resume latest with every manifest.json a directory refused naming each" brk_manifest_dir
invalid_all rundir-invalid-edited-step "--resume latest with every manifest's step edited (checksum stale) refused naming each" brk_edit_step
invalid_all rundir-invalid-nan-shard "--resume latest with NaN params in every shard (checksums fixed) refused naming each" brk_nan_shard
invalid_all rundir-invalid-shard-dir "--resume latest with every shard a directory refused naming each" brk_shard_dir
invalid_all rundir-invalid-mixed "--resume latest with three different breakages refused naming each" brk_mixed
probe rundir-resume-skip-newest rundir "--resume latest with only the newest invalid resumes from step 4, naming the skipped step 6" && {
    out=$SCR/p/rundir-resume-skip-newest/out; fresh_run "$out"; rm "$out/controlnet.safetensors"
    brk_flip_shard "$out/checkpoints/step-00000006"
    runc 60 "${CT[@]}" --max-steps 8 --checkpoint-every 2 --log-every 1 --resume latest --out "$out"
    want_ok; want_msg 'skipped.*step-00000006'; want_msg 'RESUMING from .*step-00000004'; end_probe; }
probe rundir-resume-explicit-invalid rundir "--resume DIR naming a corrupt checkpoint refused naming it; nothing changed" && {
    out=$SCR/p/rundir-resume-explicit-invalid/out; fresh_run "$out"; rm "$out/controlnet.safetensors"
    brk_flip_shard "$out/checkpoints/step-00000004"; snap o "$out"
    runc 60 "${CT[@]}" --max-steps 8 --resume "$out/checkpoints/step-00000004" --out "$out"
    want_refused 'step-00000004'; unchanged o; end_probe; }
probe rundir-resume-explicit-missing rundir "--resume DIR that does not exist refused naming it" && {
    out=$SCR/p/rundir-resume-explicit-missing/out; fresh_run "$out"; snap o "$out"
    runc 60 "${CT[@]}" --max-steps 8 --resume "$out/checkpoints/step-00000099" --out "$out"
    want_refused 'step-00000099'; unchanged o; end_probe; }
probe rundir-resume-bogus-word rundir "--resume lastest (a typo) refused, not read as a directory silently" && {
    out=$SCR/p/rundir-resume-bogus-word/out; fresh_run "$out"; snap o "$out"
    runc 60 "${CT[@]}" --max-steps 8 --resume lastest --out "$out"; want_refused 'lastest|--resume'; unchanged o; end_probe; }
probe rundir-resume-none-fresh rundir "--resume latest in an empty --out starts fresh and says so" && {
    out=$SCR/p/rundir-resume-none-fresh/out
    runc 60 "${CT[@]}" --max-steps 2 --resume latest --out "$out"; want_ok; want_msg 'starting fresh'; end_probe; }
probe rundir-resume-other-runs-ckpt rundir "--resume DIR pointing at another run's checkpoint (other --out) with other options" && {
    out=$SCR/p/rundir-resume-other-runs-ckpt/out
    runc 60 "${CT[@]}" --max-steps 8 --seed 5 --resume "$FX/cn/checkpoints/step-00000004" --out "$out"; want_refused 'seed'; end_probe; }

# Edited manifests: stale checksums are refused; re-sealed edits (the checksum recomputed) must still be refused by
# the consistency checks, and nothing may crash. Each is tried with train --resume latest and with export.
MANIFEST_EDITS=(
    "step-stale|raw|\"step\" : 6,\n  \"trainable_count\"|\"step\" : 5,\n  \"trainable_count\""
    "step-sealed|seal|\"step\" : 6,\n  \"trainable_count\"|\"step\" : 5,\n  \"trainable_count\"|\"step\" : 6,\n    \"train_seconds\"|\"step\" : 5,\n    \"train_seconds\"|\"adam_step\" : 6|\"adam_step\" : 5"
    "step-zero|seal|\"step\" : 6,\n  \"trainable_count\"|\"step\" : 0,\n  \"trainable_count\"|\"step\" : 6,\n    \"train_seconds\"|\"step\" : 0,\n    \"train_seconds\"|\"adam_step\" : 6|\"adam_step\" : 0"
    "step-negative|seal|\"step\" : 6,\n  \"trainable_count\"|\"step\" : -6,\n  \"trainable_count\"|\"step\" : 6,\n    \"train_seconds\"|\"step\" : -6,\n    \"train_seconds\"|\"adam_step\" : 6|\"adam_step\" : -6"
    "step-huge|seal|\"step\" : 6,\n  \"trainable_count\"|\"step\" : 9223372036854775807,\n  \"trainable_count\"|\"step\" : 6,\n    \"train_seconds\"|\"step\" : 9223372036854775807,\n    \"train_seconds\"|\"adam_step\" : 6|\"adam_step\" : 9223372036854775807"
    "step-overflow-sum|seal|\"adam_step\" : 6|\"adam_step\" : 9223372036854775807|\"skipped_total\" : 0|\"skipped_total\" : 9223372036854775807"
    "step-float|seal|\"step\" : 6,\n  \"trainable_count\"|\"step\" : 6.5,\n  \"trainable_count\""
    "step-string|seal|\"step\" : 6,\n  \"trainable_count\"|\"step\" : \"6\",\n  \"trainable_count\""
    "step-1e30|seal|\"step\" : 6,\n  \"trainable_count\"|\"step\" : 1e30,\n  \"trainable_count\""
    "step-deleted|seal|\n  \"step\" : 6,\n  \"trainable_count\"|\n  \"trainable_count\""
    "adam-step|seal|\"adam_step\" : 6|\"adam_step\" : 4"
    "adam-negative|seal|\"adam_step\" : 6|\"adam_step\" : -1|\"skipped_total\" : 0|\"skipped_total\" : 7"
    "skipped-negative|seal|\"skipped_total\" : 0|\"skipped_total\" : -1|\"adam_step\" : 6|\"adam_step\" : 7"
    "shard-escape|seal|\"file\" : \"shard-00000-of-00001.safetensors\"|\"file\" : \"..\\\\/..\\\\/..\\\\/controlnet.safetensors\""
    "shard-absolute|seal|\"file\" : \"shard-00000-of-00001.safetensors\"|\"file\" : \"\\\\/etc\\\\/passwd\""
    "shard-other-name|seal|\"file\" : \"shard-00000-of-00001.safetensors\"|\"file\" : \"shard-00000-of-00001.safetensors.bak\""
    "world-2|seal|\"world_size\" : 1|\"world_size\" : 2"
    "world-0|seal|\"world_size\" : 1|\"world_size\" : 0"
    "world-negative|seal|\"world_size\" : 1|\"world_size\" : -1"
    "world-huge|seal|\"world_size\" : 1|\"world_size\" : 9223372036854775807"
    "offset-1|seal|\"offset\" : 0|\"offset\" : 1"
    "offset-negative|seal|\"offset\" : 0|\"offset\" : -22064"
    "count-short|seal|\"count\" : 22064|\"count\" : 22063"
    "count-huge|seal|\"count\" : 22064|\"count\" : 9223372036854775807"
    "trainable-count-short|seal|\"trainable_count\" : 22064|\"trainable_count\" : 100|\"count\" : 22064|\"count\" : 100"
    "trainable-count-1e11|seal|\"trainable_count\" : 22064|\"trainable_count\" : 100000000000|\"count\" : 22064|\"count\" : 100000000000"
    "trainable-count-4e8|seal|\"trainable_count\" : 22064|\"trainable_count\" : 400000000|\"count\" : 22064|\"count\" : 400000000"
    "trainable-count-max|seal|\"trainable_count\" : 22064|\"trainable_count\" : 9223372036854775807|\"count\" : 22064|\"count\" : 9223372036854775807"
    "trainable-count-negative|seal|\"trainable_count\" : 22064|\"trainable_count\" : -1"
    "bytes-wrong|seal|\"bytes\" : [0-9]+|\"bytes\" : 1"
    "bytes-huge|seal|\"bytes\" : [0-9]+|\"bytes\" : 9223372036854775807"
    "rank-1|seal|\"rank\" : 0|\"rank\" : 1"
    "rank-negative|seal|\"rank\" : 0|\"rank\" : -1"
    "shards-empty|seal|\"shards\" : \\[[^]]*\\]|\"shards\" : []"
    "shards-not-array|seal|\"shards\" : \\[[^]]*\\]|\"shards\" : {}"
    "format-3|seal|checkpoint\\\\/2|checkpoint\\\\/3"
    "format-1-downgrade-sampler|raw|checkpoint\\\\/2|checkpoint\\\\/1|\"index\" : 48|\"index\" : 8"
    "format-1-downgrade-lr|raw|checkpoint\\\\/2|checkpoint\\\\/1|\"current\" : 0.0001|\"current\" : 1000"
    "sampler-index-sealed|seal|\"index\" : 48|\"index\" : 3999"
    "sampler-index-huge|seal|\"index\" : 48|\"index\" : 9223372036854775807"
    "sampler-index-negative|seal|\"index\" : 48|\"index\" : -8"
    "sampler-epoch-huge|seal|\"epoch\" : 0,\n      \"globalBatch\"|\"epoch\" : 9223372036854775807,\n      \"globalBatch\""
    "sampler-global-batch-0|seal|\"globalBatch\" : 8|\"globalBatch\" : 0"
    "sampler-dataset-count|seal|\"datasetCount\" : 4000|\"datasetCount\" : 0"
    "lr-current-nan|seal|\"current\" : 0.0001|\"current\" : \"nan\""
    "lr-total-0|seal|\"total\" : 6|\"total\" : 0"
    "config-other|seal|\\\\\"model_channels\\\\\":8|\\\\\"model_channels\\\\\":16"
    "config-huge|seal|\\\\\"model_channels\\\\\":8|\\\\\"model_channels\\\\\":1048576"
    "config-not-json|seal|\"config\" : \"\\{|\"config\" : \"\\{\\{"
    "mode-base|seal|\"mode\" : \"controlnet\",\n  \"options\"|\"mode\" : \"base\",\n  \"options\""
    "mode-bogus|seal|\"mode\" : \"controlnet\",\n  \"options\"|\"mode\" : \"bogus\",\n  \"options\""
    "data-deleted|seal|\n  \"data\" : \\{[^}]*\\},|"
    "run-id-deleted|seal|\n  \"run_id\" : \"[^\"]*\",|"
    "checksum-deleted|raw|\n  \"manifest_sha256\" : \"[0-9a-f]*\",|"
    "checksum-empty|raw|\"manifest_sha256\" : \"[0-9a-f]*\"|\"manifest_sha256\" : \"\""
    "nul-byte|raw|\"created_at\" : \"|\"created_at\" : \"\\\\u0000"
    "deep-nesting|raw|^\\{|{\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],"
)
ME=$SCR/p/me
mkdir -p "$ME"
# References: the unedited checkpoint resumed to step 8, and exported.
fresh_run "$ME/ref-resume"; rm -f "$ME/ref-resume/controlnet.safetensors"
"${CT[@]}" --max-steps 8 --resume latest --out "$ME/ref-resume" >"$ME/ref-resume.log" 2>&1
"$CN" export "$FX/cn/checkpoints/step-00000006" --out "$ME/ref-export.safetensors" >"$ME/ref-export.log" 2>&1
# An accepted edit must be harmless: the resumed (or exported) weights bit-identical to the unedited checkpoint's.
# Otherwise the edit must be refused, naming the manifest, and change no file.
for spec in "${MANIFEST_EDITS[@]}"; do
    # The extra '|' keeps a trailing empty replacement as a field (read drops one trailing empty field).
    IFS='|' read -r -a parts <<<"$spec|"
    name=${parts[0]} seal=${parts[1]}
    subs=("${parts[@]:2}")
    for cmd in resume export; do
        probe "rundir-manifest-$name-$cmd" rundir "edited manifest ($name, $seal): $cmd refuses it or is unaffected; no crash" || continue
        out=$ME/$name-$cmd; fresh_run "$out"; rm -f "$out/controlnet.safetensors"
        # Only the newest checkpoint is edited; the older ones are made invalid so that nothing else is picked.
        brk_flip_shard "$out/checkpoints/step-00000002"; brk_flip_shard "$out/checkpoints/step-00000004"
        pt reseal "$out/checkpoints/step-00000006/manifest.json" "$seal" "${subs[@]}" >"$SCR/logs/$P_ID.edit.log" 2>&1 \
            || bad "the probe's edit failed: $(cat "$SCR/logs/$P_ID.edit.log")"
        snap o "$out"
        if [ $cmd = resume ]; then
            # Under a 2 GB address-space limit: an edit may not make the reader allocate what the machine lacks.
            runc 60 "$SCR/ulim" 2000000 "${CT[@]}" --max-steps 8 --resume latest --out "$out"
            result=$out/controlnet.safetensors ref=$ME/ref-resume/controlnet.safetensors
        else
            runc 60 "$SCR/ulim" 2000000 "$CN" export "$out/checkpoints/step-00000006" --out "$ME/$name.safetensors"
            result=$ME/$name.safetensors ref=$ME/ref-export.safetensors
        fi
        if [ "$RC" = 0 ]; then
            keep=$LOG
            if ! "$CN" diff-weights "$ref" "$result" --tolerance 0 >"$LOG.diff" 2>&1; then
                bad "the edited manifest was accepted and changed the result: $(head -c 160 "$LOG.diff")"
            fi
            LOG=$keep
        else
            want_msg 'manifest|step-00000006|checkpoint|config field'
            unchanged o
        fi
        end_probe
    done
done
# Two-shard edits: a rank listed twice (the second slice would stay zero), swapped shard files.
if [ -d "$FX/cn2/checkpoints/step-00000004" ]; then
    probe rundir-manifest-dup-rank rundir "2-rank manifest listing rank 0 twice (re-sealed) refused" && {
        out=$ME/dup; rm -rf "$out"; cp -a "$FX/cn2" "$out"; rm -rf "$out/checkpoints/step-00000002"
        python3 - "$out/checkpoints/step-00000004/manifest.json" <<'PY'
import json, re, sys, hashlib
p = sys.argv[1]; t = open(p).read()
# the shards array: copy rank 0's record over rank 1's
shards = re.search(r'"shards" : \[\n(.*?)\n  \]', t, re.S).group(1)
recs = re.findall(r'    \{\n.*?\n    \}', shards, re.S)
t = t.replace(shards, recs[0] + ',\n' + recs[0])
m = re.search(r'"manifest_sha256" : "([0-9a-f]*)"', t)
c = t.replace(m.group(0), '"manifest_sha256" : ""')
t = t.replace(m.group(0), '"manifest_sha256" : "%s"' % hashlib.sha256(c.encode()).hexdigest())
open(p, 'w').write(t)
PY
        snap o "$out"
        runc 60 "$CN" export "$out/checkpoints/step-00000004" --out "$ME/dup.safetensors"
        want_refused 'rank|shard|manifest'; unchanged o
        run 60 "${CT[@]}" --max-steps 6 --resume latest --out "$out"; want_refused 'rank|shard|manifest'; unchanged o
        end_probe; }
    probe rundir-manifest-swapped-shards rundir "2-rank checkpoint with its two shard files swapped refused" && {
        out=$ME/swap; rm -rf "$out"; cp -a "$FX/cn2" "$out"; rm -rf "$out/checkpoints/step-00000002"; s=$out/checkpoints/step-00000004
        mv "$s/shard-00000-of-00002.safetensors" "$s/tmp"; mv "$s/shard-00001-of-00002.safetensors" "$s/shard-00000-of-00002.safetensors"; mv "$s/tmp" "$s/shard-00001-of-00002.safetensors"
        snap o "$out"
        runc 60 "${CT[@]}" --max-steps 6 --resume latest --out "$out"; want_refused 'shard|step-00000004'; unchanged o; end_probe; }
fi

# Checkpoint directories whose names lie about their step, and metrics.jsonl repairs on resume.
probe rundir-ckpt-dir-name-lies rundir "--resume latest with step-00000009/ holding step 6's checkpoint: refused, or resumes at step 6 saying so" && {
    out=$SCR/p/rundir-ckpt-dir-name-lies/out; fresh_run "$out"; rm "$out/controlnet.safetensors"
    mv "$out/checkpoints/step-00000006" "$out/checkpoints/step-00000009"
    runc 60 "${CT[@]}" --max-steps 12 --resume latest --out "$out"
    if [ "$RC" = 0 ]; then want_msg 'RESUMING from .*step-00000009 at step 6'; else want_msg 'step-00000009'; fi
    end_probe; }
probe rundir-ckpt-copy-other-step rundir "step-00000008/ holding a copy of step 4 (so the newest dir is an older state): refused or resumed at step 4" && {
    out=$SCR/p/rundir-ckpt-copy-other-step/out; fresh_run "$out"; rm "$out/controlnet.safetensors"
    cp -a "$out/checkpoints/step-00000004" "$out/checkpoints/step-00000008"
    runc 60 "${CT[@]}" --max-steps 10 --checkpoint-every 2 --resume latest --out "$out"
    if [ "$RC" = 0 ]; then want_msg 'step-00000008'; want_msg 'at step [46] of'; fi
    pt metrics-valid "$out/metrics.jsonl" >"$LOG.m" 2>&1 || bad "metrics.jsonl: $(cat "$LOG.m")"
    end_probe; }
probe rundir-metrics-torn-line rundir "a torn last line in metrics.jsonl is dropped by --resume latest; the file stays line-valid" && {
    out=$SCR/p/rundir-metrics-torn-line/out; fresh_run "$out"; rm "$out/controlnet.safetensors"
    printf '{"step":7,"loss":0.5,"lr' >>"$out/metrics.jsonl"
    runc 60 "${CT[@]}" --max-steps 8 --log-every 1 --resume latest --out "$out"; want_ok
    pt metrics-valid "$out/metrics.jsonl" >"$LOG.m" 2>&1 || bad "metrics.jsonl: $(cat "$LOG.m")"
    end_probe; }
probe rundir-metrics-replayed-steps rundir "resuming from step 4 with metrics up to step 6 drops the replayed records (no step twice)" && {
    out=$SCR/p/rundir-metrics-replayed-steps/out; fresh_run "$out"; rm "$out/controlnet.safetensors"
    brk_flip_shard "$out/checkpoints/step-00000006"
    runc 60 "${CT[@]}" --max-steps 8 --checkpoint-every 2 --log-every 1 --resume latest --out "$out"; want_ok
    dup=$(python3 -c "
import json,sys,collections
c=collections.Counter(json.loads(l)['step'] for l in open(sys.argv[1]) if 'loss' in l)
print(','.join(str(k) for k,v in c.items() if v>1))" "$out/metrics.jsonl" 2>&1)
    [ -z "$dup" ] || bad "steps recorded twice in metrics.jsonl: $dup"
    end_probe; }
probe rundir-metrics-garbage-middle rundir "a garbage line in the middle of metrics.jsonl: --resume latest refuses or repairs; never crashes" && {
    out=$SCR/p/rundir-metrics-garbage-middle/out; fresh_run "$out"; rm "$out/controlnet.safetensors"
    sed -i '2s/.*/garbage \x00 not json/' "$out/metrics.jsonl"
    runc 60 "${CT[@]}" --max-steps 8 --resume latest --out "$out"; want_ok_or_refused 'metrics'
    end_probe; }
probe rundir-export-nan-shard rundir "export of a checkpoint whose shard holds NaN (checksums fixed) refused naming the tensor" && {
    out=$SCR/p/rundir-export-nan-shard/out; fresh_run "$out"; brk_nan_shard "$out/checkpoints/step-00000006"
    runc 60 "$CN" export "$out/checkpoints/step-00000006" --out "$SCR/p/rundir-export-nan-shard/x.safetensors"
    want_refused "params|non-finite"; end_probe; }
probe rundir-status-dir rundir "status.json is a directory: the run refuses or fails clearly, no crash" && {
    out=$SCR/p/rundir-status-dir/out; mkdir -p "$out/status.json"
    runc 60 "${CT[@]}" --max-steps 2 --out "$out"; want_ok_or_refused 'status|--out|--overwrite'; end_probe; }
probe rundir-metrics-dir rundir "metrics.jsonl is a directory with --overwrite: removed or refused clearly, no crash" && {
    out=$SCR/p/rundir-metrics-dir/out; mkdir -p "$out/metrics.jsonl/x"
    runc 60 "${CT[@]}" --max-steps 2 --overwrite --out "$out"; want_ok_or_refused 'metrics|--out|--overwrite'; end_probe; }
probe rundir-lock-file-dir rundir "run.lock is a directory: refused naming it, no crash" && {
    out=$SCR/p/rundir-lock-file-dir/out; mkdir -p "$out/run.lock"
    runc 60 "${CT[@]}" --max-steps 2 --out "$out"; want_refused 'run.lock|lock'; end_probe; }

# Retention: --checkpoints-total-limit deletes only the run's own committed checkpoints.
probe rundir-retention-foreign rundir "--checkpoints-total-limit 1 keeps a foreign step dir, another run's checkpoint, an interrupted write and stray files" && {
    out=$SCR/p/rundir-retention-foreign/out; mkdir -p "$out/checkpoints"
    cp -a "$FX/cn2/checkpoints/step-00000002" "$out/checkpoints/step-00000001"           # another run's committed checkpoint
    mkdir -p "$out/checkpoints/step-00000003"; echo mine >"$out/checkpoints/step-00000003/notes.txt"   # no manifest
    mkdir -p "$out/checkpoints/keep"; echo k >"$out/checkpoints/keep/x"; echo s >"$out/checkpoints/README"
    mkdir -p "$SCR/p/rr-target/step-00000005"; echo t >"$SCR/p/rr-target/step-00000005/precious"
    ln -s "$SCR/p/rr-target/step-00000005" "$out/checkpoints/step-00000005"
    snap foreign "$out/checkpoints/step-00000001" "$out/checkpoints/step-00000003" "$out/checkpoints/keep" "$out/checkpoints/README" "$SCR/p/rr-target"
    runc 60 "${CT[@]}" --max-steps 8 --checkpoint-every 2 --checkpoints-total-limit 1 --out "$out"
    want_refused "$REUSE_RE"   # checkpoints/ is not empty: the run is refused without --overwrite
    unchanged foreign
    run 60 "${CT[@]}" --max-steps 8 --checkpoint-every 2 --checkpoints-total-limit 1 --resume latest --out "$out"
    unchanged foreign
    end_probe; }
probe rundir-retention-own rundir "--checkpoints-total-limit 2 leaves exactly the newest 2 of the run's own checkpoints, logging each removal" && {
    out=$SCR/p/rundir-retention-own/out
    runc 60 "${CT[@]}" --max-steps 10 --checkpoint-every 2 --checkpoints-total-limit 2 --out "$out"; want_ok
    [ "$(ls "$out/checkpoints" | tr '\n' ' ')" = "step-00000008 step-00000010 " ] || bad "left: $(ls "$out/checkpoints" | tr '\n' ' ')"
    [ "$(grep -c 'removed old checkpoint' "$LOG")" = 3 ] || bad "$(grep -c 'removed old checkpoint' "$LOG") removals logged, expected 3"
    end_probe; }
probe rundir-retention-resume-keeps-other-run rundir "a resumed run with --checkpoints-total-limit 1 does not delete a checkpoint of another run copied in" && {
    out=$SCR/p/rundir-retention-resume-keeps-other-run/out; fresh_run "$out"; rm "$out/controlnet.safetensors"
    cp -a "$FX/cn2/checkpoints/step-00000002" "$out/checkpoints/step-00000001"; snap other "$out/checkpoints/step-00000001"
    runc 60 "${CT[@]}" --max-steps 10 --checkpoint-every 2 --checkpoints-total-limit 1 --resume latest --out "$out"; want_ok
    unchanged other; end_probe; }
probe rundir-retention-user-file-in-own rundir "retention removing an own checkpoint keeps a user's file put inside it (or refuses to delete it)" && {
    out=$SCR/p/rundir-retention-user-file-in-own/out; fresh_run "$out"; rm "$out/controlnet.safetensors"
    echo important >"$out/checkpoints/step-00000002/my-notes.txt"; snap notes "$out/checkpoints/step-00000002/my-notes.txt"
    runc 60 "${CT[@]}" --max-steps 10 --checkpoint-every 2 --checkpoints-total-limit 1 --resume latest --out "$out"; want_ok
    unchanged notes; end_probe; }

# ---------------------------------------------------------------------------------------------------------------
# Class 4: non-finite and out-of-range values refused naming the tensor; diff-weights output stays valid JSON.
# ---------------------------------------------------------------------------------------------------------------
NF=$SCR/p/nf; mkdir -p "$NF"
for val in nan inf -inf; do
    for where in first last; do
        tag=$val-$where
        tb=$(pt poison "$BASE" "$NF/base-$tag.safetensors" "$val" "$where" 5)
        tc=$(pt poison "$CTRL" "$NF/ctrl-$tag.safetensors" "$val" "$where" 3)
        simple 60 refuse "$tb" "finite-sample-base-$tag" finite "sample --base with $val in $where tensor refused naming it ($tb)" -- \
            "$CN" sample --base "$NF/base-$tag.safetensors" --count 2 --steps 1 --grid "$NF/s-$tag.png"
        simple 60 refuse "$tb" "finite-train-base-$tag" finite "train-controlnet --base with $val in $where tensor refused naming it" -- \
            "${CT[@]}" --base "$NF/base-$tag.safetensors" --max-steps 2 --out "$NF/t-$tag"
        simple 60 refuse "$tb" "finite-init-from-$tag" finite "train-base --init-from with $val in $where tensor refused naming it" -- \
            "${BT[@]}" --init-from "$NF/base-$tag.safetensors" --max-steps 2 --out "$NF/i-$tag"
        simple 60 refuse "$tc" "finite-sample-control-$tag" finite "sample --control with $val in $where tensor refused naming it ($tc)" -- \
            "$CN" sample --base "$BASE" --control "$NF/ctrl-$tag.safetensors" --hints "$FX/hints.safetensors" --count 2 --steps 1 --grid "$NF/c-$tag.png"
        simple 60 refuse "$tc" "finite-eval-control-$tag" finite "eval --control with $val in $where tensor refused naming it" -- \
            "$CN" eval --base "$BASE" --control "$NF/ctrl-$tag.safetensors" --count 2 --steps 1 --data-dir "$DATA_DIR"
        simple 60 refuse "$tb" "finite-eval-base-$tag" finite "eval --base with $val in $where tensor refused naming it" -- \
            "$CN" eval --base "$NF/base-$tag.safetensors" --control "$CTRL" --count 2 --steps 1 --data-dir "$DATA_DIR"
    done
done
# Poison stored as F64 (converted on load): the check must still see it.
pt dtype "$BASE" "$NF/base-f64.safetensors"
tb=$(pt poison "$NF/base-f64.safetensors" "$NF/base-f64-nan.safetensors" nan last 0 2>/dev/null)
simple 60 refuse "$tb|non-finite" finite-base-f64-nan finite "sample --base (one tensor F64, NaN in another) refused naming it" -- \
    "$CN" sample --base "$NF/base-f64-nan.safetensors" --count 2 --steps 1 --grid "$NF/f64.png"
simple 60 okref "F64|dtype" finite-base-f64-clean finite "sample --base with one tensor stored as F64 (finite) runs or is refused naming the dtype" -- \
    "$CN" sample --base "$NF/base-f64.safetensors" --count 2 --steps 1 --grid "$NF/f64c.png"
python3 - "$NF/base-f64.safetensors" "$NF/base-f64-big.safetensors" >/dev/null <<'PY'
import json, struct, sys
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n]); d = bytearray(b[8 + n:])
k = [k for k in h if k != '__metadata__' and h[k]['dtype'] == 'F64'][0]; s = h[k]['data_offsets'][0]
d[s:s + 8] = struct.pack('<d', 1e300)          # finite as a double, infinite as a float
open(sys.argv[2], 'wb').write(b[:8 + n] + bytes(d)); print(k)
PY
simple 60 refuse "non-finite|inf|F64|range" finite-base-f64-overflow finite "sample --base with an F64 value 1e300 (infinite as Float) refused" -- \
    "$CN" sample --base "$NF/base-f64-big.safetensors" --count 2 --steps 1 --grid "$NF/f64b.png"
# --hints values and shapes.
for v in nan inf -inf 5.0 -2 1.0000001 -1e-7 3e38; do
    pt hints "$NF/hints-$v.safetensors" 4 1 8 8 0.5 "$v"
    simple 60 refuse "hints" "finite-hints-$v" finite "sample --hints holding $v refused naming the tensor" -- \
        "$CN" sample --base "$BASE" --control "$CTRL" --hints "$NF/hints-$v.safetensors" --count 4 --steps 1 --grid "$NF/h-$v.png"
done
for v in 0 1 -0.0; do
    pt hints "$NF/hints-ok-$v.safetensors" 4 1 8 8 "$v"
    simple 60 ok "" "finite-hints-ok-$v" finite "sample --hints all $v (in range) runs" -- \
        "$CN" sample --base "$BASE" --control "$CTRL" --hints "$NF/hints-ok-$v.safetensors" --count 4 --steps 1 --grid "$NF/hok-$v.png"
done
HSHAPES=("0,1,8,8" "4,0,8,8" "4,1,0,8" "4,1,8,0" "0,0,0,0" "4,1,8" "4,1,8,8,1" "4,2,8,8" "4,1,16,16" "4,1,8,9" "1,1,8,8")
for sh in "${HSHAPES[@]}"; do
    IFS=, read -r -a d <<<"$sh"
    if [ ${#d[@]} = 4 ]; then pt hints "$NF/hs-$sh.safetensors" "${d[0]}" "${d[1]}" "${d[2]}" "${d[3]}" 0.5
    else
        cnt=1; for x in "${d[@]}"; do cnt=$((cnt * x)); done
        pt hints "$NF/hs-$sh.safetensors" "$cnt" 1 1 1 0.5 - "[${sh}]"
    fi
    exp=refuse; [ "$sh" = "1,1,8,8" ] && exp=ok
    simple 60 $exp "hints" "finite-hints-shape-$sh" finite "sample --hints of shape [$sh]" -- \
        "$CN" sample --base "$BASE" --control "$CTRL" --hints "$NF/hs-$sh.safetensors" --count 4 --steps 1 --grid "$NF/hs-$sh.png"
done
pt hints "$NF/hints-i64.safetensors" 4 1 8 8 1 - - I64
simple 60 refuse "hints|I64|dtype" finite-hints-i64 finite "sample --hints stored as I64 refused naming the dtype" -- \
    "$CN" sample --base "$BASE" --control "$CTRL" --hints "$NF/hints-i64.safetensors" --count 4 --steps 1 --grid "$NF/hi64.png"
pt hints "$NF/hints-f64.safetensors" 4 1 8 8 7 - - F64
simple 60 refuse "hints" finite-hints-f64-7 finite "sample --hints stored as F64 holding 7.0 refused" -- \
    "$CN" sample --base "$BASE" --control "$CTRL" --hints "$NF/hints-f64.safetensors" --count 4 --steps 1 --grid "$NF/hf64.png"
pt rename "$FX/hints.safetensors" "$NF/hints-misnamed.safetensors" images
simple 60 refuse "hints" finite-hints-no-tensor finite "sample --hints without a tensor named hints refused" -- \
    "$CN" sample --base "$BASE" --control "$CTRL" --hints "$NF/hints-misnamed.safetensors" --count 4 --steps 1 --grid "$NF/hmis.png"
# --control FILE:SCALE with non-finite scales is in class 3; here: scales on eval.
for scale in nan inf -inf 1e39; do
    simple 60 refuse '--control' "finite-eval-scale-$scale" finite "eval --control FILE:$scale refused naming --control" -- \
        "$CN" eval --base "$BASE" --control "$CTRL:$scale" --count 2 --steps 1 --data-dir "$DATA_DIR"
done
# diff-weights between NaN, Inf and clean files: valid JSON (python json.loads), and the right verdict.
diff_case() {   # diff_case ID DESCRIPTION EXPECTED-EXIT(0|1|any) A B [ARGS...]
    local id=$1 desc=$2 want=$3 a=$4 b=$5; shift 5
    probe "$id" finite "$desc" || return 0
    runc 60 "$CN" diff-weights "$a" "$b" "$@"
    case $want in 0|1) want_rc "$want" ;; esac
    grep '^{' "$LOG" >"$LOG.json"
    [ -s "$LOG.json" ] || bad "no JSON line printed"
    pt json "$LOG.json" >"$LOG.jerr" 2>&1 || bad "stdout is not valid JSON: $(cat "$LOG.jerr")"
    end_probe
}
diff_case finite-diff-nan-clean "diff-weights NaN vs clean: valid JSON, exit 1 at tolerance 0" 1 "$NF/ctrl-nan-first.safetensors" "$CTRL" --tolerance 0
diff_case finite-diff-clean-nan "diff-weights clean vs NaN (last tensor): valid JSON, exit 1 at tolerance 1e30" 1 "$CTRL" "$NF/ctrl-nan-last.safetensors" --tolerance 1e30
diff_case finite-diff-inf-clean "diff-weights Inf vs clean: valid JSON" any "$NF/ctrl-inf-first.safetensors" "$CTRL"
diff_case finite-diff-inf-inf "diff-weights Inf vs the same Inf: valid JSON, exit 0 at tolerance 0" 0 "$NF/ctrl-inf-first.safetensors" "$NF/ctrl-inf-first.safetensors" --tolerance 0
diff_case finite-diff-nan-nan "diff-weights NaN vs NaN: valid JSON" any "$NF/ctrl-nan-first.safetensors" "$NF/ctrl-nan-first.safetensors"
diff_case finite-diff-clean "diff-weights clean vs itself: valid JSON, exit 0 at tolerance 0" 0 "$CTRL" "$CTRL" --tolerance 0
diff_case finite-diff-f64-f32 "diff-weights F64-stored copy vs F32 original: valid JSON, exit 0 at tolerance 0" 0 "$NF/base-f64.safetensors" "$BASE" --tolerance 0
# -Inf vs +Inf: make the pair.
pt poison "$CTRL" "$NF/ctrl-neginf-first.safetensors" -inf first 3 >/dev/null
diff_case finite-diff-inf-vs-neginf "diff-weights +Inf vs -Inf at the same element: valid JSON, exit 1 at tolerance 1e30" 1 "$NF/ctrl-inf-first.safetensors" "$NF/ctrl-neginf-first.safetensors" --tolerance 1e30
# Tensor names that need escaping in JSON.
for nm in 'a"b' 'back\slash' $'tab\there' $'nl\nname' '</script>'; do
    n=$((n + 1))
    pt rename "$CTRL" "$NF/name-$n-a.safetensors" "$nm"
    pt poison "$NF/name-$n-a.safetensors" "$NF/name-$n-b.safetensors" 0.25 "$nm" 0 >/dev/null
    diff_case "finite-diff-name-$n" "diff-weights with a differing tensor named $(printf %q "$nm"): valid JSON" 1 "$NF/name-$n-a.safetensors" "$NF/name-$n-b.safetensors" --tolerance 0
done

# ---------------------------------------------------------------------------------------------------------------
# Class 5: ranks and resumes that must agree.
# ---------------------------------------------------------------------------------------------------------------
AG=$SCR/p/ag; mkdir -p "$AG"
# A second tiny base (other seed): same config, other weights.
"$CN" train-base "${TINY[@]}" --max-steps 5 --batch-size 8 --seed 7 --out "$AG/base2" >"$AG/base2.log" 2>&1
BASE2=$AG/base2/unet.safetensors
cp "$DATA_DIR/mnist_5k.csv.gz" "$AG/copy.csv.gz"
# MPMD: rank 0 and rank 1 with different options. Refused naming the option, within the timeout (no deadlock).
MPMD_CASES=(
    "batch-size|--batch-size 8|--batch-size 4"
    "seed|--seed 0|--seed 1"
    "lr|--lr 1e-4|--lr 2e-4"
    "max-steps|--max-steps 4|--max-steps 5"
    "grad-accum|--grad-accum 1|--grad-accum 2"
    "hint|--hint canny|--hint sobel"
    "data|--data mnist5k|--data $CLS012"
    "data-same-content|--data mnist5k|--data $AG/copy.csv.gz"
    "base|--base $BASE|--base $BASE2"
    "checkpoint-every|--checkpoint-every 2|--checkpoint-every 3"
    "checkpoint-every-missing|--checkpoint-every 2|--log-every 20"
    "checksum-every|--checksum-every 2|--checksum-every 3"
    "weight-decay|--weight-decay 0.01|--weight-decay 0"
    "max-grad-norm|--max-grad-norm 1|--max-grad-norm 0.5"
    "lr-schedule|--lr-schedule constant|--lr-schedule cosine"
    "warmup|--warmup-steps 0|--warmup-steps 2"
    "min-lr|--lr-schedule cosine --min-lr-fraction 0|--lr-schedule cosine --min-lr-fraction 0.5"
    "simulate-ranks|--simulate-ranks 1|--simulate-ranks 2"
    "resize|--resize|--log-every 20"
    "validation-steps|--validation-steps 2|--log-every 20"
    "checkpoints-limit|--checkpoint-every 1 --checkpoints-total-limit 1|--checkpoint-every 1 --checkpoints-total-limit 2"
    "epochs|--epochs 0.001|--epochs 0.002"
)
for spec in "${MPMD_CASES[@]}"; do
    IFS='|' read -r name a b <<<"$spec"
    probe "agree-mpmd-$name" agree "MPMD -np 1 ... $a : -np 1 ... $b refused (no hang)" || continue
    out=$AG/mpmd-$name
    # shellcheck disable=SC2206
    A=($a) B=($b)
    steps=(--max-steps 4); case $name in max-steps|epochs) steps=() ;; esac
    runc 90 mpirun --mca pml ob1 --mca btl self,vader --bind-to none -x OPENBLAS_NUM_THREADS=1 -x CONTROLNET_PROGRESS \
        -np 1 "$CN" train-controlnet --config tiny --data-dir "$DATA_DIR" --base "$BASE" --batch-size 8 "${steps[@]}" "${A[@]}" --resize --out "$out" : \
        -np 1 "$CN" train-controlnet --config tiny --data-dir "$DATA_DIR" --base "$BASE" --batch-size 8 "${steps[@]}" "${B[@]}" $( [ "$name" = resize ] || echo --resize ) --out "$out"
    case $name in
        # A different --base file with other weights, or the same data under another name: either refused naming
        # the option, or (same content) accepted. Options that only change what rank 0 prints/writes may agree.
        data-same-content) want_ok_or_refused '--data' ;;
        checkpoints-limit) want_refused '--checkpoints-total-limit' ;;
        min-lr) want_refused '--min-lr-fraction' ;;
        *) want_refused "$(echo "$a" | awk '{print $1}')|$(echo "$b" | awk '{print $1}')" ;;
    esac
    [ -e "$out/controlnet.safetensors" ] && [ "$RC" != 0 ] && bad "weights written by a refused job"
    end_probe
done
probe agree-mpmd-out agree "MPMD with another --out per rank refused naming --out" && {
    runc 90 mpirun --mca pml ob1 --mca btl self,vader --bind-to none -x OPENBLAS_NUM_THREADS=1 -x CONTROLNET_PROGRESS \
        -np 1 "${CT[@]}" --max-steps 4 --out "$AG/mo-a" : -np 1 "${CT[@]}" --max-steps 4 --out "$AG/mo-b"
    want_refused '--out'; end_probe; }
probe agree-mpmd-resume agree "MPMD with --resume latest on one rank only refused naming --resume" && {
    fresh_run "$AG/mr"; rm "$AG/mr/controlnet.safetensors"
    runc 90 mpirun --mca pml ob1 --mca btl self,vader --bind-to none -x OPENBLAS_NUM_THREADS=1 -x CONTROLNET_PROGRESS \
        -np 1 "${CT[@]}" --max-steps 8 --resume latest --out "$AG/mr" : -np 1 "${CT[@]}" --max-steps 8 --overwrite --out "$AG/mr"
    want_refused '--resume|--overwrite'; end_probe; }
probe agree-mpmd-config-file agree "MPMD: --config tiny on rank 0, a JSON file with a different config on rank 1, refused" && {
    pt config "$AG/cfg16.json" '{"model_channels": 16, "hint_block_channels": [4, 16]}'
    runc 90 mpirun --mca pml ob1 --mca btl self,vader --bind-to none -x OPENBLAS_NUM_THREADS=1 -x CONTROLNET_PROGRESS \
        -np 1 "${BT[@]}" --max-steps 2 --out "$AG/mc" : -np 1 "$CN" train-base --config "$AG/cfg16.json" --resize --data-dir "$DATA_DIR" --batch-size 8 --max-steps 2 --out "$AG/mc"
    want_refused '--config'; end_probe; }
probe agree-mpmd-init-from agree "MPMD train-base with another --init-from per rank refused" && {
    runc 90 mpirun --mca pml ob1 --mca btl self,vader --bind-to none -x OPENBLAS_NUM_THREADS=1 -x CONTROLNET_PROGRESS \
        -np 1 "${BT[@]}" --max-steps 2 --init-from "$BASE" --out "$AG/mi" : -np 1 "${BT[@]}" --max-steps 2 --init-from "$BASE2" --out "$AG/mi"
    want_refused '--init-from'; end_probe; }
probe agree-mpmd-mode agree "MPMD: train-base on rank 0, train-controlnet on rank 1, refused (no hang)" && {
    runc 90 mpirun --mca pml ob1 --mca btl self,vader --bind-to none -x OPENBLAS_NUM_THREADS=1 -x CONTROLNET_PROGRESS \
        -np 1 "${BT[@]}" --max-steps 2 --out "$AG/mm" : -np 1 "${CT[@]}" --max-steps 2 --out "$AG/mm"
    want_fail; end_probe; }
probe agree-mpmd-binary-args agree "MPMD: train-controlnet on rank 0, sample on rank 1 (no hang)" && {
    runc 90 mpirun --mca pml ob1 --mca btl self,vader --bind-to none -x OPENBLAS_NUM_THREADS=1 -x CONTROLNET_PROGRESS \
        -np 1 "${CT[@]}" --max-steps 2 --out "$AG/ms" : -np 1 "$CN" sample --base "$BASE" --count 1 --steps 1 --grid "$AG/ms.png"
    want_fail; end_probe; }

# Resumes with other options: refused naming the option (seed, data, hint, config, base, resize); no file changed.
RESUME_CASES=(
    "data|refuse|--data|--data $CLS012"
    "hint|refuse|--hint|--hint sobel"
    "seed|refuse|--seed|--seed 3"
    "base|refuse|base model|--base $BASE2"
    "config|refuse|config|--config $AG/cfg16.json"
    "no-resize|refuse|--resize|--no-resize-placeholder"
    "batch-size|okref|--batch-size|--batch-size 4"
    "simulate-2|okref|--simulate-ranks|--simulate-ranks 2"
    "grad-accum|okref|--grad-accum|--grad-accum 2"
    "lr|okref|--lr|--lr 1e-3"
    "mode-base|refuse|base|--mode-base-placeholder"
)
for spec in "${RESUME_CASES[@]}"; do
    IFS='|' read -r name expect re extra <<<"$spec"
    probe "agree-resume-$name" agree "--resume latest with another ${extra%% *} ($expect)" || continue
    out=$AG/res-$name; fresh_run "$out"; rm "$out/controlnet.safetensors"; snap o "$out"
    # shellcheck disable=SC2206
    X=($extra)
    case $name in
        no-resize) cmd=("$CN" train-controlnet --config tiny --data-dir "$DATA_DIR" --base "$BASE" --batch-size 8) ; X=() ;;
        mode-base) cmd=("${BT[@]}"); X=() ;;
        config) cmd=("$CN" train-controlnet --resize --data-dir "$DATA_DIR" --base "$BASE" --batch-size 8) ;;
        *) cmd=("${CT[@]}") ;;
    esac
    runc 60 "${cmd[@]}" "${X[@]}" --max-steps 8 --resume latest --out "$out"
    if [ "$expect" = refuse ]; then want_refused "$re"; unchanged o; else want_ok_or_refused "$re"; fi
    end_probe
done
# A 2-rank checkpoint resumed on 1 rank and a 1-rank one on 2 ranks (resharding): both finish.
probe agree-reshard-2to1 agree "a 2-rank checkpoint resumed by 1 process (reshard) finishes" && {
    out=$AG/rs21; rm -rf "$out"; cp -a "$FX/cn2" "$out"; rm -f "$out/controlnet.safetensors"
    runc 60 "${CT[@]}" --max-steps 6 --resume latest --out "$out"; want_ok; want_msg 'resharded|RESUMING'; end_probe; }
probe agree-reshard-1to2 agree "a 1-rank checkpoint resumed under mpirun np 2 (reshard) finishes" && {
    out=$AG/rs12; fresh_run "$out"; rm "$out/controlnet.safetensors"
    runc 90 "${MPI[@]}" -np 2 "${CT[@]}" --max-steps 8 --resume latest --out "$out"; want_ok; want_msg 'resharded|RESUMING'; end_probe; }
# Class configs: labels beyond num_classes, unlabelled data.
pt idx "$AG/unlabelled-images-idx3-ubyte" 200 28 28
pt idx "$AG/lab-images-idx3-ubyte" 200 28 28; pt idxlabels "$AG/lab-labels-idx1-ubyte" 200 9
simple 60 refuse 'num_classes|label|--data' agree-class-mnist-labels agree "tiny-class (3 classes) on mnist5k (labels to 9) refused naming the labels" -- \
    "$CN" train-base --config tiny-class --resize --data-dir "$DATA_DIR" --batch-size 8 --max-steps 2 --out "$AG/cl1"
simple 60 refuse 'num_classes|label|--data' agree-class-mnist-labels-cn agree "train-controlnet tiny-class on mnist5k refused naming the labels" -- \
    "$CN" train-controlnet --config tiny-class --resize --data-dir "$DATA_DIR" --base "$CBASE" --batch-size 8 --max-steps 2 --out "$AG/cl2"
simple 60 refuse 'label|--data' agree-class-unlabelled-idx agree "tiny-class on an unlabelled IDX file refused naming the data" -- \
    "$CN" train-base --config tiny-class --resize --data "$AG/unlabelled-images-idx3-ubyte" --batch-size 8 --max-steps 2 --out "$AG/cl3"
simple 60 refuse 'num_classes|label' agree-class-idx-label-9 agree "tiny-class on IDX with labels up to 9 refused" -- \
    "$CN" train-base --config tiny-class --resize --data "$AG/lab-images-idx3-ubyte" --batch-size 8 --max-steps 2 --out "$AG/cl4"
simple 60 okref 'label' agree-unconditional-unlabelled agree "tiny (unconditional) on an unlabelled IDX file runs" -- \
    "$CN" train-base --config tiny --resize --data "$AG/unlabelled-images-idx3-ubyte" --batch-size 8 --max-steps 2 --out "$AG/cl5"
simple 60 ok '' agree-class-012-ok agree "tiny-class on digits 0-2 with --prompt-dropout 0.1 runs" -- \
    "$CN" train-base --config tiny-class --resize --data "$CLS012" --batch-size 8 --max-steps 2 --prompt-dropout 0.1 --out "$AG/cl6"
simple 60 refuse '--prompt-dropout' agree-dropout-unconditional agree "--prompt-dropout 0.1 with an unconditional config refused" -- \
    "${BT[@]}" --max-steps 2 --prompt-dropout 0.1 --out "$AG/cl7"
awk -F, 'BEGIN{OFS=","} NR==5{$NF=-1} {print}' "$CLS012" >"$AG/neg-label.csv"
simple 60 refuse 'label|neg-label' agree-class-negative-label agree "tiny-class on a CSV with a label -1 refused naming the file" -- \
    "$CN" train-base --config tiny-class --resize --data "$AG/neg-label.csv" --batch-size 8 --max-steps 2 --out "$AG/cl8"
simple 60 okref 'label|--label|class' agree-class-sample-cfg agree "sample the class base with --cfg-scale 3 --label 2" -- \
    "$CN" sample --base "$CBASE" --count 2 --steps 1 --cfg-scale 3 --label 2 --grid "$AG/cls.png"
simple 60 okref 'label|class|--data' agree-class-sample-hints-mnist agree "sample a class ControlNet with hints from mnist5k (labels to 9) refused or runs without crash" -- \
    "$CN" sample --base "$CBASE" --hints-from test --count 4 --steps 1 --data-dir "$DATA_DIR" --grid "$AG/cls2.png"

# ---------------------------------------------------------------------------------------------------------------
# Class 6: signals and exits (stop within one step, checkpoint, status "stopped", exit 0 - 1 for TERM/INT to mpirun -,
# and a --resume latest that ends bit-identical to an uninterrupted run); gzip bombs and corrupt data files.
# ---------------------------------------------------------------------------------------------------------------
SG=$SCR/p/sg; mkdir -p "$SG"
# 60 steps: long enough that a signal at step 10 arrives before the end even through mpirun's hold (below).
SIG_STEPS=60
SIGT=("${CT[@]}" --batch-size 96 --log-every 1 --max-steps "$SIG_STEPS")
"${MPI[@]}" -np 2 "${SIGT[@]}" --out "$SG/ref2" >"$SG/ref2.log" 2>&1 || echo "(reference np2 run failed: signal probes will fail)"
"${SIGT[@]}" --out "$SG/ref1" >"$SG/ref1.log" 2>&1 || echo "(reference np1 run failed)"
"${MPI[@]}" -np 2 "${SIGT[@]}" --checkpoint-every 1 --out "$SG/ref2c" >"$SG/ref2c.log" 2>&1 || true
# ranks OUT: the pids of the rank processes of the run writing OUT (oldest first).
ranks() { pgrep -f "^$CN train-controlnet.*--out $1( |\$)" | sort -n; }
wait_lines() {   # wait_lines OUT N [TIMEOUT-TENTHS]: until OUT/metrics.jsonl has N lines
    local i
    for i in $(seq 1 "${3:-300}"); do
        [ -f "$1/metrics.jsonl" ] && [ "$(wc -l <"$1/metrics.jsonl")" -ge "$2" ] && return 0
        sleep 0.1
    done
    return 1
}
# sig_case ID DESCRIPTION np1|np2 ACTION EXPECTED-EXIT REF [TRAIN-ARGS...]: runs SIGT (+ARGS) in the background,
# calls ACTION (a function; $JOB is mpirun's or the process's pid, $OUT the run directory), then checks the exit,
# status.json, the checkpoint's step against the step at the signal, and that --resume latest ends bit-identical to REF.
sig_case() {
    local id=$1 desc=$2 np=$3 action=$4 want=$5 ref=$6; shift 6
    probe "$id" signal "$desc" || return 0
    OUT=$SG/$id
    local t0 t1 st stopped_at
    local -a cmd=("${SIGT[@]}" "$@")
    [ "$np" = np2 ] && cmd=("${MPI[@]}" -np 2 "${cmd[@]}")
    # SIGHUP must reach the process with its default action even when this suite runs under nohup, whose
    # SIG_IGN every child would inherit.
    [ "$want" = hup ] && cmd=(env --default-signal=HUP "${cmd[@]}")
    P_CMD=$(printf '%q ' "${cmd[@]}" | sed "s#$SCR#\$SCR#g; s#$CN#controlnet#g")"--out \$OUT  (then $action)"
    LOG=$SCR/logs/$id.run.log
    t0=$(date +%s.%N)
    "${cmd[@]}" --out "$OUT" >"$LOG" 2>&1 &
    JOB=$!; BG_PIDS+=("$JOB")
    SIGNAL_STEP=0
    $action
    ( trap - EXIT INT TERM; sleep 90; kill -9 "$JOB" 2>/dev/null ) & local guard=$!
    wait "$JOB"; RC=$?
    kill "$guard" 2>/dev/null; wait "$guard" 2>/dev/null
    t1=$(date +%s.%N); P_T=$(echo "$t1 - $t0" | bc)
    if [ "$want" = hup ]; then
        # Not a stop signal: death by SIGHUP (exit 129) is expected; the run must still resume bit-identical.
        [ "$RC" = 129 ] || check_crash
    else
        check_crash
    fi
    case $want in any|hup) ;; *) want_rc "$want" ;; esac
    st=$(pt status "$OUT" 2>/dev/null)
    [ "$want" = hup ] && [[ "$st" == running* ]] && st=""
    case $st in
        stopped*)
            stopped_at=${st#stopped }
            # SIGNAL_STEP counts the metrics lines written when the signal was sent; the step in flight may not have
            # written its line yet, so "within one step" allows SIGNAL_STEP + 2.
            if [ "$want" = 1 ]; then
                # SIGTERM/SIGINT to mpirun: Open MPI 4.1 holds them for odls_base_sigkill_timeout (1 s), then sends
                # the ranks SIGTERM, and SIGKILL after as long again. The stop must come within that hold plus a step.
                local lag
                lag=$(python3 -c 'import json,sys; t={}
for l in open(sys.argv[1]):
    r=json.loads(l); t[r.get("step")]=r.get("time_s")
a,b=t.get(int(sys.argv[2])),t.get(int(sys.argv[3]))
print("%.2f" % (b-a) if a is not None and b is not None else "")' "$OUT/metrics.jsonl" "$SIGNAL_STEP" "$stopped_at" 2>/dev/null)
                if [ -z "$lag" ] || [ "$(echo "$lag > 2.0" | bc)" = 1 ]; then
                    bad "stopped at step $stopped_at, ${lag:-?} s of training after the signal at step $SIGNAL_STEP (Open MPI's hold is 1 s)"
                fi
            elif [ "$SIGNAL_STEP" -gt 0 ] && [ "$stopped_at" -gt $((SIGNAL_STEP + 2)) ]; then
                bad "stopped at step $stopped_at, more than one step after the signal (metrics showed step $SIGNAL_STEP when it was sent)"
            fi
            [ -d "$OUT/checkpoints/$(printf 'step-%08d' "$stopped_at")" ] || bad "no checkpoint of the stop step $stopped_at"
            [ -e "$OUT/controlnet.safetensors" ] && bad "final weights written on a stop" ;;
        complete*) [ "$SIGNAL_STEP" -gt 0 ] && [ "$SIGNAL_STEP" -lt $((SIG_STEPS - 1)) ] && bad "the run completed although stopped at step $SIGNAL_STEP" ;;
        "") [ "$want" != hup ] && [ "$SIGNAL_STEP" -gt 0 ] && bad "no status.json" ;;
        *) bad "status.json says '$st'" ;;
    esac
    if [ -f "$OUT/metrics.jsonl" ]; then pt metrics-valid "$OUT/metrics.jsonl" >"$LOG.m" 2>&1 || bad "metrics.jsonl: $(cat "$LOG.m")"; fi
    # Resume (same world size) to the end and compare with the uninterrupted run.
    local -a rcmd=("${SIGT[@]}" "$@")
    [ "$np" = np2 ] && rcmd=("${MPI[@]}" -np 2 "${rcmd[@]}")
    local keep_log=$LOG keep_rc=$RC
    if [[ "$st" != complete* ]]; then
        run 120 "${rcmd[@]}" --resume latest --out "$OUT"
        [ "$RC" = 0 ] || bad "the resume failed (exit $RC): $(grep -i error "$LOG" | head -1)"
    fi
    run 30 "$CN" diff-weights "$ref/controlnet.safetensors" "$OUT/controlnet.safetensors" --tolerance 0
    [ "$RC" = 0 ] || bad "the resumed weights differ from the uninterrupted run: $(head -c 200 "$LOG")"
    LOG=$keep_log RC=$keep_rc
    end_probe
}
# at_step N: waits for step N; the action then signals and calls `mark`, which takes the step at the signal (the
# metrics lines written by then, as scripts/mpi-tests/44-signals.sh measures it).
at_step() { wait_lines "$OUT" "$1" || bad "the run did not reach step $1"; }
mark() { SIGNAL_STEP=$(wc -l <"$OUT/metrics.jsonl" 2>/dev/null || echo 0); }
act_usr1_mpirun() { at_step 10; kill -USR1 "$JOB"; mark; }
act_term_mpirun() { at_step 10; kill -TERM "$JOB"; mark; }
act_int_mpirun() { at_step 10; kill -INT "$JOB"; mark; }
act_term_rank_last() { at_step 10; kill -TERM "$(ranks "$OUT" | tail -1)"; mark; }
act_term_rank_first() { at_step 10; kill -TERM "$(ranks "$OUT" | head -1)"; mark; }
act_int_rank() { at_step 10; kill -INT "$(ranks "$OUT" | tail -1)"; mark; }
act_usr1_rank() { at_step 10; kill -USR1 "$(ranks "$OUT" | head -1)"; mark; }
act_term_all() { at_step 10; kill -TERM $(ranks "$OUT"); mark; }
act_mixed_all() { at_step 10; local r; r=($(ranks "$OUT")); kill -TERM "${r[0]}"; mark; kill -USR1 "${r[1]:-${r[0]}}"; }
act_twice_fast() { at_step 10; local r; r=$(ranks "$OUT" | tail -1); kill -TERM "$r"; mark; sleep 0.5; kill -TERM "$r" 2>/dev/null; }
act_twice_slow() { at_step 10; local r; r=$(ranks "$OUT" | tail -1); kill -TERM "$r"; mark; sleep 5; kill -TERM "$r" 2>/dev/null; }
act_storm() { at_step 10; local r i; r=$(ranks "$OUT" | tail -1); kill -TERM "$r"; mark; for i in $(seq 1 40); do kill -TERM "$r" 2>/dev/null; done; }
act_storm_all() { at_step 10; local i r; r=$(ranks "$OUT"); kill -USR1 "$JOB"; kill -TERM $r; mark; for i in $(seq 1 20); do kill -TERM $r 2>/dev/null; kill -USR1 $r 2>/dev/null; done; }
act_usr1_mpirun_twice() { at_step 10; kill -USR1 "$JOB"; mark; sleep 0.3; kill -USR1 "$JOB" 2>/dev/null; }
act_early_usr1_mpirun() { sleep 0.3; kill -USR1 "$JOB"; }
act_early_term_rank() { local i; for i in $(seq 1 50); do [ -n "$(ranks "$OUT")" ] && break; sleep 0.02; done; kill -TERM $(ranks "$OUT") 2>/dev/null; }
act_early_term_mpirun() { sleep 0.3; kill -TERM "$JOB"; }
act_ckpt_random() { at_step 5; sleep 0.0$((RANDOM % 9)); kill -TERM $(ranks "$OUT") 2>/dev/null; mark; }
act_validation() { at_step 5; kill -TERM $(ranks "$OUT" | head -1) 2>/dev/null; mark; }
act_term_1() { at_step 10; kill -TERM "$JOB"; mark; }
act_int_1() { at_step 10; kill -INT "$JOB"; mark; }
act_usr1_1() { at_step 10; kill -USR1 "$JOB"; mark; }
act_storm_1() { at_step 10; local i; kill -TERM "$JOB"; mark; for i in $(seq 1 40); do kill -TERM "$JOB" 2>/dev/null; done; }
act_early_1() { sleep 0.05; kill -TERM "$JOB"; }
act_hup_1() { at_step 10; kill -HUP "$JOB"; mark; }
sig_case signal-usr1-mpirun "SIGUSR1 to mpirun: exit 0, stopped, resume bit-identical" np2 act_usr1_mpirun 0 "$SG/ref2"
sig_case signal-usr1-mpirun-twice "SIGUSR1 to mpirun twice within 0.3 s: one request" np2 act_usr1_mpirun_twice 0 "$SG/ref2"
sig_case signal-term-mpirun "SIGTERM to mpirun: exit 1 (Open MPI), stopped within its 1 s hold, checkpoint, resume bit-identical" np2 act_term_mpirun 1 "$SG/ref2"
sig_case signal-int-mpirun "SIGINT to mpirun: exit 1 (Open MPI), stopped within its 1 s hold, checkpoint, resume bit-identical" np2 act_int_mpirun 1 "$SG/ref2"
sig_case signal-term-rank1 "SIGTERM to one (the newest) rank: exit 0" np2 act_term_rank_last 0 "$SG/ref2"
sig_case signal-term-rank0 "SIGTERM to the oldest rank: exit 0" np2 act_term_rank_first 0 "$SG/ref2"
sig_case signal-int-rank "SIGINT to one rank: exit 0" np2 act_int_rank 0 "$SG/ref2"
sig_case signal-usr1-rank "SIGUSR1 to one rank: exit 0" np2 act_usr1_rank 0 "$SG/ref2"
sig_case signal-term-all "SIGTERM to every rank at once: exit 0" np2 act_term_all 0 "$SG/ref2"
sig_case signal-mixed-all "SIGTERM to rank A and SIGUSR1 to rank B at once: exit 0" np2 act_mixed_all 0 "$SG/ref2"
sig_case signal-twice-fast "SIGTERM twice within 0.5 s to one rank: one request, exit 0" np2 act_twice_fast 0 "$SG/ref2"
sig_case signal-twice-slow "SIGTERM twice 5 s apart to one rank: stopped by the first, exit 0" np2 act_twice_slow 0 "$SG/ref2"
sig_case signal-storm-rank "40 SIGTERMs to one rank in a burst: exit 0" np2 act_storm 0 "$SG/ref2"
sig_case signal-storm-all "one SIGUSR1 to mpirun and a storm of SIGTERM/SIGUSR1 to both ranks: exit 0" np2 act_storm_all 0 "$SG/ref2"
sig_case signal-early-usr1-mpirun "SIGUSR1 to mpirun 0.3 s after launch (before the ranks start): no rank killed by the signal" np2 act_early_usr1_mpirun 0 "$SG/ref2"
sig_case signal-early-term-rank "SIGTERM to the ranks as soon as they exist: exit 0, no crash" np2 act_early_term_rank 0 "$SG/ref2"
sig_case signal-early-term-mpirun "SIGTERM to mpirun 0.3 s after launch: exit 1 at most, no signal death of a rank" np2 act_early_term_mpirun any "$SG/ref2"
sig_case signal-during-checkpoint "SIGTERM to every rank while checkpointing every step" np2 act_ckpt_random 0 "$SG/ref2c" --checkpoint-every 1
sig_case signal-during-checkpoint-limit "SIGTERM while checkpointing every step with --checkpoints-total-limit 2" np2 act_ckpt_random 0 "$SG/ref2c" --checkpoint-every 1 --checkpoints-total-limit 2
sig_case signal-during-validation "SIGTERM to rank 0 around a validation preview (every 5 steps, 64 hints)" np2 act_validation 0 "$SG/ref2" --validation-steps 5 --validation-count 64
sig_case signal-np1-term "one process: SIGTERM: exit 0, resume bit-identical" np1 act_term_1 0 "$SG/ref1"
sig_case signal-np1-int "one process: SIGINT: exit 0" np1 act_int_1 0 "$SG/ref1"
sig_case signal-np1-usr1 "one process: SIGUSR1: exit 0" np1 act_usr1_1 0 "$SG/ref1"
sig_case signal-np1-storm "one process: 40 SIGTERMs in a burst: exit 0" np1 act_storm_1 0 "$SG/ref1"
sig_case signal-np1-early "one process: SIGTERM 50 ms after exec (before the handlers may exist): no signal death" np1 act_early_1 any "$SG/ref1"
sig_case signal-np1-hup "one process: SIGHUP (not a stop signal): the process ends, the resume is still bit-identical" np1 act_hup_1 hup "$SG/ref1"
# kill -9 of one rank: the job goes down within seconds (no hang), and the run resumes from its last checkpoint.
probe signal-kill9-rank signal "kill -9 of one rank: mpirun ends within 30 s; --resume latest ends bit-identical" && {
    OUT=$SG/kill9; LOG=$SCR/logs/signal-kill9.log
    "${MPI[@]}" -np 2 "${SIGT[@]}" --checkpoint-every 5 --out "$OUT" >"$LOG" 2>&1 & JOB=$!; BG_PIDS+=("$JOB")
    at_step 12; t0=$(date +%s); kill -9 "$(ranks "$OUT" | tail -1)"
    ( trap - EXIT INT TERM; sleep 60; kill -9 "$JOB" 2>/dev/null ) & guard=$!; wait "$JOB"; RC=$?; kill "$guard" 2>/dev/null
    el=$(( $(date +%s) - t0 )); [ "$el" -le 30 ] || bad "mpirun took $el s to end after a rank died"
    [ "$RC" != 0 ] || bad "mpirun exited 0 although a rank was killed"
    run 120 "${MPI[@]}" -np 2 "${SIGT[@]}" --checkpoint-every 5 --resume latest --out "$OUT"; want_ok
    run 30 "$CN" diff-weights "$SG/ref2/controlnet.safetensors" "$OUT/controlnet.safetensors" --tolerance 0; want_ok
    end_probe; }
probe signal-grad-accum signal "SIGTERM during a step of 32 micro-steps: stops between micro-steps, resume bit-identical" && {
    GA=("${CT[@]}" --batch-size 8 --grad-accum 32 --log-every 1 --max-steps 6)
    "${MPI[@]}" -np 2 "${GA[@]}" --out "$SG/ga-ref" >"$SG/ga-ref.log" 2>&1
    OUT=$SG/ga; LOG=$SCR/logs/signal-ga.log
    "${MPI[@]}" -np 2 "${GA[@]}" --out "$OUT" >"$LOG" 2>&1 & JOB=$!; BG_PIDS+=("$JOB")
    at_step 2; sleep 0.2; kill -TERM $(ranks "$OUT"); wait "$JOB"; RC=$?; want_ok
    run 120 "${MPI[@]}" -np 2 "${GA[@]}" --resume latest --out "$OUT"; want_ok
    run 30 "$CN" diff-weights "$SG/ga-ref/controlnet.safetensors" "$OUT/controlnet.safetensors" --tolerance 0; want_ok
    end_probe; }
probe signal-sample-term signal "SIGTERM to sample: ends promptly without a crash or a partial grid" && {
    LOG=$SCR/logs/signal-sample.log; rm -f "$SG/st.png"
    "$CN" sample --base "$MNIST_BASE" --count 64 --steps 50 --grid "$SG/st.png" --data-dir "$DATA_DIR" >"$LOG" 2>&1 & JOB=$!
    sleep 1; kill -TERM "$JOB"; ( trap - EXIT INT TERM; sleep 30; kill -9 "$JOB" 2>/dev/null ) & guard=$!; wait "$JOB"; RC=$?; kill "$guard" 2>/dev/null
    [ "$RC" = 143 ] && RC=0   # death by SIGTERM is the expected outcome for a non-training command
    check_crash; [ -e "$SG/st.png" ] && [ "$(head -c 4 "$SG/st.png" | od -An -c | tr -d ' ')" != '211PNG' ] && bad "a partial grid was left"
    end_probe; }

# Gzip bombs and corrupt data files as --data.
GZ=$SCR/p/gz; mkdir -p "$GZ"
pt gzbomb "$GZ/bomb-images-idx3-ubyte.gz" idx 2048
pt gzbomb "$GZ/bombbig-images-idx3-ubyte.gz" idxbig 2048
pt gzbomb "$GZ/bomb.csv.gz" csv 1024
pt gzbomb "$GZ/bombrow.csv.gz" csvrow 1024
for b in bomb-images-idx3-ubyte.gz bombbig-images-idx3-ubyte.gz bomb.csv.gz bombrow.csv.gz; do
    simple 60 refuse "$b|--data" "signal-gzbomb-$b" signal "--data gzip bomb $b (1-2 GB inflated) refused naming the file, quickly" -- \
        "$SCR/ulim" 4000000 "${BT[@]}" --max-steps 1 --data "$GZ/$b" --out "$GZ/o-$b"
done
simple 60 refuse "bomb|--data" signal-gzbomb-sample signal "sample --hints-from test with a gzip-bomb --data refused" -- \
    "$SCR/ulim" 4000000 "$CN" sample --base "$BASE" --control "$CTRL" --hints-from test --data "$GZ/bomb-images-idx3-ubyte.gz" --count 2 --steps 1 --grid "$GZ/b.png"
simple 60 refuse "bomb|--data" signal-gzbomb-eval signal "eval with a gzip-bomb CSV --data refused" -- \
    "$SCR/ulim" 4000000 "$CN" eval --base "$BASE" --control "$CTRL" --data "$GZ/bomb.csv.gz" --count 2 --steps 1
head -c 100000 "$DATA_DIR/mnist_5k.csv.gz" >"$GZ/trunc.csv.gz"
cp "$DATA_DIR/mnist_5k.csv.gz" "$GZ/flip.csv.gz"; printf '\xff\xff\xff\xff' | dd of="$GZ/flip.csv.gz" bs=1 seek=200000 conv=notrunc 2>/dev/null
: >"$GZ/empty.csv.gz"; echo "not gzip" >"$GZ/plain.csv.gz"; printf '\x1f\x8b' >"$GZ/magic-only.csv.gz"
cp "$DATA_DIR/mnist_5k.csv.gz" "$GZ/trail.csv.gz"; echo "trailing garbage" >>"$GZ/trail.csv.gz"
for f in trunc flip empty plain magic-only trail; do
    exp=refuse; [ $f = trail ] && exp=okref
    simple 60 $exp "$f.csv.gz|--data" "signal-corrupt-gz-$f" signal "--data $f.csv.gz (corrupt gzip) refused naming the file" -- \
        "${BT[@]}" --max-steps 1 --data "$GZ/$f.csv.gz" --out "$GZ/o-$f"
done
# IDX files whose headers lie.
pt idx "$GZ/short-images-idx3-ubyte" 100 28 28 1000
pt idx "$GZ/long-images-idx3-ubyte" 100 28 28 10
pt idx "$GZ/zero-count-images-idx3-ubyte" 0 28 28
pt idx "$GZ/zero-rows-images-idx3-ubyte" 100 0 28
pt idx "$GZ/zero-cols-images-idx3-ubyte" 100 28 0
pt idx "$GZ/huge-dims-images-idx3-ubyte" 1 1 1 - ; python3 -c "
import struct; open('$GZ/huge-dims-images-idx3-ubyte','wb').write(struct.pack('>IIII',0x803,2,65536,65536)+bytes(64))"
python3 -c "
import struct; open('$GZ/maxcount-images-idx3-ubyte','wb').write(struct.pack('>IIII',0x803,0xffffffff,28,28)+bytes(784*3))"
python3 -c "
import struct; open('$GZ/wrongmagic-images-idx3-ubyte','wb').write(struct.pack('>IIII',0x801,10,28,28)+bytes(7840))"
python3 -c "
import struct; open('$GZ/float-images-idx3-ubyte','wb').write(struct.pack('>IIII',0x0D03,10,28,28)+bytes(7840*4))"
python3 -c "
import struct; open('$GZ/dims4-images-idx3-ubyte','wb').write(struct.pack('>IIIII',0x804,10,28,28,1)+bytes(7840))"
python3 -c "
open('$GZ/header-only-images-idx3-ubyte','wb').write(bytes([0,0,8,3]))"
pt idx "$GZ/lie-gz-images-idx3-ubyte.gz" 100 28 28 1000 gz
for f in short long zero-count zero-rows zero-cols huge-dims maxcount wrongmagic float dims4 header-only lie-gz; do
    file=$GZ/$f-images-idx3-ubyte; [ $f = lie-gz ] && file=$file.gz
    exp=refuse; [ $f = long ] && exp=okref
    simple 60 $exp "$f-images|--data" "signal-idx-$f" signal "--data IDX with a lying header ($f) refused naming the file" -- \
        "$SCR/ulim" 4000000 "${BT[@]}" --max-steps 1 --data "$file" --out "$GZ/o-idx-$f"
done
# CSV files with bad rows.
printf '0,0,0\n1,2\n' >"$GZ/ragged.csv"
gzip -dc "$DATA_DIR/mnist_5k.csv.gz" | head -50 | sed '7s/^0,/x,/' >"$GZ/nonnum.csv"
gzip -dc "$DATA_DIR/mnist_5k.csv.gz" | head -50 | sed '9s/^0,/256,/' >"$GZ/pix256.csv"
gzip -dc "$DATA_DIR/mnist_5k.csv.gz" | head -50 | sed '9s/^0,/-1,/' >"$GZ/pixneg.csv"
: >"$GZ/empty.csv"; printf '\n\n\n' >"$GZ/blank.csv"
gzip -dc "$DATA_DIR/mnist_5k.csv.gz" | head -50 | awk -F, 'BEGIN{OFS=","} NR==3{$NF=99999999999999999999} {print}' >"$GZ/hugelabel.csv"
python3 -c "open('$GZ/nul.csv','wb').write(b'0,' * 784 + b'\0\n')"
python3 -c "open('$GZ/nonsquare.csv','w').write(('0,' * 783 + '1\n') * 10)"
for f in ragged nonnum pix256 pixneg empty blank hugelabel nul nonsquare; do
    simple 60 refuse "$f.csv|--data" "signal-csv-$f" signal "--data CSV with bad rows ($f) refused naming the file" -- \
        "${BT[@]}" --max-steps 1 --data "$GZ/$f.csv" --out "$GZ/o-csv-$f"
done
# Holes left by the self-checksum: a re-sealed manifest without its data fingerprint, and a manifest downgraded to
# format 1 (no checksum), resumed with other data: the recorded options still say what the run trained on.
probe rundir-manifest-no-fingerprint-other-hint rundir "re-sealed manifest without its data fingerprint, resumed with --hint sobel: refused" && {
    out=$ME/nofp; fresh_run "$out"; rm -f "$out/controlnet.safetensors"
    for s in "$out"/checkpoints/step-*; do pt reseal "$s/manifest.json" seal '\n  "data" : \{[^}]*\},' ''; done
    snap o "$out"
    runc 60 "${CT[@]}" --max-steps 8 --hint sobel --resume latest --out "$out"; want_refused 'hint|data'; unchanged o; end_probe; }
probe rundir-manifest-format1-other-data rundir "manifest downgraded to format 1 (no checksum), resumed with other --data: refused" && {
    out=$ME/fmt1; fresh_run "$out"; rm -f "$out/controlnet.safetensors"
    for s in "$out"/checkpoints/step-*; do pt reseal "$s/manifest.json" raw 'checkpoint\\/2' 'checkpoint\\/1'; done
    snap o "$out"
    runc 60 "$CN" train-controlnet --config tiny --resize --base "$BASE" --batch-size 8 --data "$CLS012" --max-steps 8 --resume latest --out "$out"
    want_refused 'data'; unchanged o; end_probe; }

# ---------------------------------------------------------------------------------------------------------------
# Class 3 (continued): config files, full disks, file-size limits.
# ---------------------------------------------------------------------------------------------------------------
CF=$SCR/p/cf; mkdir -p "$CF"
CONFIG_CASES=(
    "mc-2p20|model_channels|{\"model_channels\": 1048576}"
    "classes-1e12|num_classes|{\"num_classes\": 1000000000000}"
    "classes-1e12-float|num_classes|{\"num_classes\": 1e12}"
    "image-65536|image_size|{\"image_size\": 65536}"
    "resblocks-1e9|num_res_blocks|{\"num_res_blocks\": 1000000000}"
    "mult-100|channel_mult|{\"channel_mult\": [$(printf '1,%.0s' $(seq 1 99))1]}"
    "mult-huge-entry|channel_mult|{\"channel_mult\": [1, 9223372036854775807]}"
    "mult-empty|channel_mult|{\"channel_mult\": []}"
    "mult-zero|channel_mult|{\"channel_mult\": [1, 0]}"
    "neg-image|image_size|{\"image_size\": -8}"
    "neg-mc|model_channels|{\"model_channels\": -8}"
    "neg-heads|num_heads|{\"num_heads\": -2}"
    "neg-groups|norm_groups|{\"norm_groups\": -2}"
    "neg-classes|num_classes|{\"num_classes\": -1}"
    "neg-in|in_channels|{\"in_channels\": -1}"
    "neg-hint-ch|hint_channels|{\"hint_channels\": -1}"
    "zero-in|in_channels|{\"in_channels\": 0}"
    "zero-image|image_size|{\"image_size\": 0}"
    "zero-groups|norm_groups|{\"norm_groups\": 0}"
    "odd-mc|model_channels|{\"model_channels\": 7}"
    "float-mc|model_channels|{\"model_channels\": 8.5}"
    "float-int-mc|model_channels|{\"model_channels\": 8.0}"
    "string-mc|model_channels|{\"model_channels\": \"8\"}"
    "object-mc|model_channels|{\"model_channels\": {\"a\": 1}}"
    "null-mc|model_channels|{\"model_channels\": null}"
    "bool-mc|model_channels|{\"model_channels\": true}"
    "missing-mc|model_channels|{\"model_channels\": \"__delete__\"}"
    "unknown-key|dropout|{\"dropout\": 0.1}"
    "groups-not-dividing|norm_groups|{\"norm_groups\": 3}"
    "heads-not-dividing|num_heads|{\"num_heads\": 3}"
    "attn-out-of-range|attention_levels|{\"attention_levels\": [5]}"
    "attn-negative|attention_levels|{\"attention_levels\": [-1]}"
    "attn-dup|attention_levels|{\"attention_levels\": [1, 1]}"
    "hint-blocks-empty|hint_block_channels|{\"hint_block_channels\": []}"
    "hint-blocks-zero|hint_block_channels|{\"hint_block_channels\": [0, 8]}"
    "image-not-divisible|image_size|{\"image_size\": 7}"
    "image-1|image_size|{\"image_size\": 1}"
    "mult-8-levels-image-8|channel_mult|{\"channel_mult\": [1,1,1,1,1,1,1,1]}"
    "max-everything|config|{\"image_size\": 2048, \"model_channels\": 4096, \"channel_mult\": [64,64,64,64,64,64,64,64], \"num_res_blocks\": 16, \"attention_levels\": [0,1,2,3,4,5,6,7], \"num_heads\": 1024, \"norm_groups\": 4096, \"hint_block_channels\": [4096,4096,4096,4096,4096,4096,4096,4096,4096,4096,4096,4096,4096,4096,4096,4096], \"num_classes\": 1000000, \"in_channels\": 16, \"hint_channels\": 16}"
    "big-valid|config|{\"image_size\": 512, \"model_channels\": 1024, \"channel_mult\": [1,2,4,8], \"num_res_blocks\": 4, \"attention_levels\": [1,2,3], \"norm_groups\": 32, \"num_heads\": 8, \"hint_block_channels\": [16, 1024]}"
)
for spec in "${CONFIG_CASES[@]}"; do
    IFS='|' read -r name field mods <<<"$spec"
    pt config "$CF/$name.json" "$mods"
    exp=refuse; case $name in float-int-mc|max-everything|big-valid|image-1|mult-8-levels-image-8|image-not-divisible) exp=okref ;; esac
    simple 60 $exp "$field|config" "input-config-info-$name" input "info --config with $name" -- \
        "$SCR/ulim" 4000000 "$CN" info --config "$CF/$name.json"
    case $name in mc-2p20|classes-1e12|mult-100|float-mc|string-mc|unknown-key|groups-not-dividing|max-everything|big-valid|image-65536|resblocks-1e9|neg-image)
        simple 60 $exp "$field|config|--batch-size" "input-config-train-$name" input "train-base --config with $name" -- \
            "$SCR/ulim" 4000000 "$CN" train-base --config "$CF/$name.json" --resize --data-dir "$DATA_DIR" --batch-size 2 --max-steps 1 --out "$CF/o-$name"
        simple 60 $exp "$field|config|--batch-size" "input-config-bench-$name" input "bench --config with $name" -- \
            "$SCR/ulim" 4000000 "$CN" bench --config "$CF/$name.json" --batch-size 2 --steps 1 --warmup 0
        simple 30 $exp "$field|config|--batch" "input-config-sgemm-$name" input "bench-sgemm --config with $name" -- \
            "$SCR/ulim" 4000000 "$CN" bench-sgemm --config "$CF/$name.json" --batch 1 --repeats 1 ;;
    esac
done
: >"$CF/empty.json"; echo '[]' >"$CF/array.json"; echo 'null' >"$CF/null.json"; echo '{' >"$CF/open.json"
printf '\xff\xfe{}' >"$CF/badutf.json"
python3 -c "print('[' * 100000 + ']' * 100000)" >"$CF/deep-array.json"
python3 -c "print('{\"a\":' * 100000 + '1' + '}' * 100000)" >"$CF/deep-object.json"
python3 -c "
import json; c=json.load(open('$CF/odd-mc.json')); c['model_channels']=8; s=json.dumps(c)
open('$CF/dupkey.json','w').write(s[:-1] + ', \"model_channels\": 1048576}')"
python3 -c "
import sys; f=open('$CF/huge.json','w'); f.write('{\"model_channels\": 8, \"pad\": \"'); f.write('a' * (100 << 20)); f.write('\"}')"
python3 -c "
import sys; f=open('$CF/huge-ws.json','w'); f.write(' ' * (100 << 20)); f.write(open('$CF/float-int-mc.json').read())"
for f in empty array null open badutf deep-array deep-object dupkey huge huge-ws; do
    exp=refuse; [ $f = huge-ws ] && exp=okref
    simple 60 $exp "$f.json|config" "input-config-file-$f" input "info --config $f.json refused naming the file" -- \
        "$SCR/ulim" 4000000 "$CN" info --config "$CF/$f.json"
done
simple 60 refuse "deep-object|config" input-config-deep-train input "train-base --config deep-object.json refused" -- \
    "$CN" train-base --config "$CF/deep-object.json" --data-dir "$DATA_DIR" --max-steps 1 --out "$CF/o-deep"
simple 60 refuse "config|directory" input-config-dir input "info --config DIRECTORY refused" -- "$CN" info --config "$CF"
simple 20 refuse "config|/dev/zero|regular" input-config-dev-zero input "info --config /dev/zero refused (no hang, no memory blow-up)" -- \
    "$SCR/ulim" 4000000 "$CN" info --config /dev/zero
mkfifo "$CF/fifo.json"
simple 20 refuse "config|fifo|regular" input-config-fifo input "info --config FIFO (no writer) refused, no hang" -- "$CN" info --config "$CF/fifo.json"
simple 60 refuse "config" input-config-unknown-preset input "train --config mnist-huge (not a preset, not a file) refused" -- \
    "$CN" train-base --config mnist-huge --max-steps 1 --out "$CF/o-preset"

# Full disks: a 2 MB tmpfs (root), filled to leave N bytes free; else `ulimit -f`.
FULL=$SCR/full
mkdir -p "$FULL"
HAVE_TMPFS=0
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=2m tmpfs "$FULL" 2>/dev/null; then HAVE_TMPFS=1; MOUNTS+=("$FULL"); fi
# fill_to FREE-KB: leaves about FREE-KB free on the tmpfs.
fill_to() {
    find "$FULL" -mindepth 1 -maxdepth 1 ! -name 'filler*' -exec rm -rf {} + 2>/dev/null; rm -f "$FULL"/filler*
    local avail; avail=$(df -k --output=avail "$FULL" | tail -1)
    [ "$avail" -gt "$1" ] && dd if=/dev/zero of="$FULL/filler" bs=1k count=$((avail - $1)) 2>/dev/null
    true
}
DISK_RE='space|disk|write|ENOSPC|full|quota'
if [ $HAVE_TMPFS = 1 ]; then
    for kb in 0 4 40 200 400; do
        probe "input-full-train-$kb" input "train-controlnet (checkpoints every step) on a disk with $kb KB free: clear error, metrics line-valid, no crash" && {
            fill_to "$kb"
            runc 60 "${CT[@]}" --max-steps 6 --checkpoint-every 1 --log-every 1 --out "$FULL/run"
            [ "$RC" = 0 ] || want_msg "$DISK_RE|--out"
            [ -f "$FULL/run/metrics.jsonl" ] && { pt metrics-valid "$FULL/run/metrics.jsonl" >"$LOG.m" 2>&1 || bad "metrics.jsonl: $(cat "$LOG.m")"; }
            st=$(pt status "$FULL/run" 2>/dev/null); [ "$RC" = 0 ] || [[ "$st" != running* ]] || bad "status.json still says running after the failure"
            # Space freed: --resume latest must continue from a valid checkpoint or start fresh, and finish.
            rm -f "$FULL"/filler*
            run 60 "${CT[@]}" --max-steps 6 --checkpoint-every 1 --log-every 1 --resume latest --out "$FULL/run"
            [ "$RC" = 0 ] || bad "after freeing space, --resume latest failed: $(grep -i error "$LOG" | head -1)"
            end_probe; }
    done
    for kb in 0 8 100; do
        probe "input-full-sample-$kb" input "sample --grid and --out on a disk with $kb KB free: clear error, no partial files" && {
            fill_to "$kb"
            runc 60 "$CN" sample --base "$MNIST_BASE" --count 64 --steps 1 --grid "$FULL/g.png" --out "$FULL/s.safetensors" --data-dir "$DATA_DIR"
            [ "$RC" = 0 ] || want_msg "$DISK_RE|g.png|s.safetensors"
            if [ "$RC" != 0 ] && [ -e "$FULL/s.safetensors" ]; then bad "a partial s.safetensors was left"; fi
            end_probe; }
        probe "input-full-eval-$kb" input "eval --json/--grid on a disk with $kb KB free: clear error" && {
            fill_to "$kb"
            runc 60 "$CN" eval --base "$BASE" --control "$CTRL" --count 64 --steps 1 --data-dir "$DATA_DIR" --json "$FULL/e.json" --grid "$FULL/e.png"
            [ "$RC" = 0 ] || want_msg "$DISK_RE|e.json|e.png"
            end_probe; }
        probe "input-full-export-$kb" input "export on a disk with $kb KB free: clear error, no partial file" && {
            fill_to "$kb"
            runc 60 "$CN" export "$FX/cn/checkpoints/step-00000006" --out "$FULL/x.safetensors"
            [ "$RC" = 0 ] || want_msg "$DISK_RE|x.safetensors"
            if [ "$RC" != 0 ] && [ -e "$FULL/x.safetensors" ]; then bad "a partial x.safetensors was left"; fi
            end_probe; }
    done
    probe input-full-validation input "validation previews on a full disk: clear error, no crash" && {
        fill_to 30
        runc 60 "${CT[@]}" --max-steps 4 --validation-steps 2 --validation-count 64 --out "$FULL/val"
        [ "$RC" = 0 ] || want_msg "$DISK_RE|validation"; end_probe; }
    probe input-full-base-weights input "train-base writing unet.safetensors on a disk with 60 KB free: clear error" && {
        fill_to 60
        runc 60 "${BT[@]}" --max-steps 2 --out "$FULL/b"
        [ "$RC" = 0 ] || want_msg "$DISK_RE|unet"; end_probe; }
    probe input-full-metrics-np2 input "mpirun np 2 on a disk with 8 KB free: every rank ends, clear error" && {
        fill_to 8
        runc 90 "${MPI[@]}" -np 2 "${CT[@]}" --max-steps 6 --checkpoint-every 1 --log-every 1 --out "$FULL/np2"
        [ "$RC" = 0 ] || want_msg "$DISK_RE"; end_probe; }
    umount -l "$FULL" 2>/dev/null
fi
# ulimit -f: a write past the limit must be an error (SIGXFSZ ignored), not a death by signal.
FS=$SCR/p/fsize; mkdir -p "$FS"
printf '#!/usr/bin/env bash\nulimit -f "$1" || exit 99\nshift\nexec "$@"\n' >"$SCR/flim"; chmod +x "$SCR/flim"
simple 60 okref "$DISK_RE|size|limit|--out" input-fsize-train input "train-controlnet with checkpoints under ulimit -f 100 (KB): clear error, no SIGXFSZ" -- \
    "$SCR/flim" 100 "${CT[@]}" --max-steps 4 --checkpoint-every 2 --out "$FS/run"
simple 60 okref "$DISK_RE|size|limit|--out" input-fsize-train-metrics input "train-controlnet --log-every 1 under ulimit -f 1 (KB)" -- \
    "$SCR/flim" 1 "${CT[@]}" --max-steps 40 --log-every 1 --out "$FS/run2"
simple 60 okref "$DISK_RE|size|limit|--grid|--out" input-fsize-sample input "sample --out under ulimit -f 50 (KB)" -- \
    "$SCR/flim" 50 "$CN" sample --base "$MNIST_BASE" --count 64 --steps 1 --grid "$FS/g.png" --out "$FS/s.safetensors"
simple 60 okref "$DISK_RE|size|limit|--out" input-fsize-export input "export under ulimit -f 10 (KB)" -- \
    "$SCR/flim" 10 "$CN" export "$FX/cn/checkpoints/step-00000006" --out "$FS/x.safetensors"
simple 60 okref "$DISK_RE|size|limit|--json" input-fsize-eval input "eval --grid under ulimit -f 1 (KB)" -- \
    "$SCR/flim" 1 "$CN" eval --base "$BASE" --control "$CTRL" --count 64 --steps 1 --data-dir "$DATA_DIR" --grid "$FS/e.png"
simple 60 okref "$DISK_RE|size|limit|cache" input-fsize-base input "train-base under ulimit -f 20 (KB)" -- \
    "$SCR/flim" 20 "${BT[@]}" --max-steps 2 --out "$FS/b"
# /dev/full as an output. (A private node of the same device in the scratch directory: a tool that renames a
# temporary file over its output would otherwise replace the system's /dev/full with a regular file.)
DEVFULL=/dev/full
if [ "$(id -u)" = 0 ] && mknod -m 666 "$FS/full" c 1 7 2>/dev/null; then DEVFULL=$FS/full; fi
devfull_case() {   # devfull_case ID DESCRIPTION OPTION-REGEX CMD... (the output path is $DEVFULL)
    local id=$1 desc=$2 re=$3; shift 3
    probe "$id" input "$desc" || return 0
    runc 60 "$@"
    want_refused "$re|full|space"
    [ -c "$DEVFULL" ] || { bad "the output device $DEVFULL was replaced by a regular file"; rm -f "$DEVFULL"; mknod -m 666 "$DEVFULL" c 1 7 2>/dev/null; }
    end_probe
}
devfull_case input-devfull-grid "sample --grid on a full device: clear error, the device left alone" '--grid' \
    "$CN" sample --base "$BASE" --count 2 --steps 1 --grid "$DEVFULL"
devfull_case input-devfull-out "sample --out on a full device: clear error, the device left alone" '--out' \
    "$CN" sample --base "$BASE" --count 2 --steps 1 --grid "$FS/g2.png" --out "$DEVFULL"
devfull_case input-devfull-json "eval --json on a full device: clear error, the device left alone" '--json' \
    "$CN" eval --base "$BASE" --control "$CTRL" --count 2 --steps 1 --data-dir "$DATA_DIR" --json "$DEVFULL"
devfull_case input-devfull-eval-grid "eval --grid on a full device: clear error, the device left alone" '--grid' \
    "$CN" eval --base "$BASE" --control "$CTRL" --count 2 --steps 1 --data-dir "$DATA_DIR" --grid "$DEVFULL"
devfull_case input-devfull-export "export --out on a full device: clear error, the device left alone" '--out' \
    "$CN" export "$FX/cn/checkpoints/step-00000006" --out "$DEVFULL"

# ---------------------------------------------------------------------------------------------------------------
# Class 7: the other commands with bad arguments; paths that are directories, devices, FIFOs, empty or truncated.
# ---------------------------------------------------------------------------------------------------------------
MS=$SCR/p/misc; mkdir -p "$MS/adir"
: >"$MS/empty.safetensors"; head -c 1000 "$BASE" >"$MS/trunc.safetensors"; echo "hello" >"$MS/text.safetensors"
python3 -c "import struct; open('$MS/hugelen.safetensors','wb').write(struct.pack('<Q', 2**63 + 5) + b'{}')"
python3 -c "import struct; open('$MS/maxlen.safetensors','wb').write(struct.pack('<Q', 2**64 - 1) + b'{}')"
python3 -c "import struct; h=b'{\"x\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,0]}}'; open('$MS/overflow-shape.safetensors','wb').write(struct.pack('<Q', len(h)) + h)"
python3 -c "import struct; h=b'{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,9223372036854775807]}}'; open('$MS/huge-offset.safetensors','wb').write(struct.pack('<Q', len(h)) + h + bytes(8))"
python3 -c "import struct; h=b'{\"x\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}'; open('$MS/empty-tensor.safetensors','wb').write(struct.pack('<Q', len(h)) + h)"
python3 -c "import struct; h=b'{\"__metadata__\":{\"config\":\"{\\\\\"model_channels\\\\\":1048576}\"},\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}'; open('$MS/meta-bad-config.safetensors','wb').write(struct.pack('<Q', len(h)) + h + bytes(4))"
python3 -c "import struct; h=('{' + '\"a\":{' * 50000 + '}' * 50000 + '}').encode(); open('$MS/deep-header.safetensors','wb').write(struct.pack('<Q', len(h)) + h)"
pt meta "$BASE" "$MS/base-noconfig.safetensors" config --delete
pt meta "$BASE" "$MS/base-mnistconfig.safetensors" config "$(python3 -c "
import json,struct; b=open('$MNIST_BASE','rb').read(); n=struct.unpack('<Q',b[:8])[0]; print(json.loads(b[8:8+n])['__metadata__']['config'])")"
mkfifo "$MS/fifo.safetensors"
BADFILES=(adir empty trunc text hugelen maxlen overflow-shape huge-offset empty-tensor meta-bad-config deep-header base-noconfig base-mnistconfig fifo devzero devnull)
badpath() { case $1 in adir) echo "$MS/adir" ;; fifo) echo "$MS/fifo.safetensors" ;; devzero) echo /dev/zero ;; devnull) echo /dev/null ;; *) echo "$MS/$1.safetensors" ;; esac; }
for f in "${BADFILES[@]}"; do
    p=$(badpath "$f")
    simple 20 refuse "--base|$(basename "$p")" "misc-sample-base-$f" misc "sample --base $f refused naming it (no hang)" -- \
        "$SCR/ulim" 4000000 "$CN" sample --base "$p" --count 2 --steps 1 --grid "$MS/s-$f.png"
    simple 20 refuse "--control|$(basename "$p")" "misc-sample-control-$f" misc "sample --control $f refused naming it" -- \
        "$SCR/ulim" 4000000 "$CN" sample --base "$BASE" --control "$p" --hints "$FX/hints.safetensors" --count 2 --steps 1 --grid "$MS/c-$f.png"
    simple 20 refuse "--hints|hints|$(basename "$p")" "misc-sample-hints-$f" misc "sample --hints $f refused naming it" -- \
        "$SCR/ulim" 4000000 "$CN" sample --base "$BASE" --control "$CTRL" --hints "$p" --count 2 --steps 1 --grid "$MS/h-$f.png"
    simple 20 refuse "$(basename "$p")|safetensors" "misc-diff-$f" misc "diff-weights $f vs a clean file refused naming it" -- \
        "$SCR/ulim" 4000000 "$CN" diff-weights "$p" "$CTRL"
    case $f in adir|empty|trunc|hugelen|fifo|devzero|base-noconfig)
        simple 20 refuse "--base|$(basename "$p")" "misc-train-base-$f" misc "train-controlnet --base $f refused naming it" -- \
            "$SCR/ulim" 4000000 "${CT[@]}" --base "$p" --max-steps 1 --out "$MS/t-$f"
        simple 20 refuse "--init-from|$(basename "$p")" "misc-train-init-$f" misc "train-base --init-from $f refused naming it" -- \
            "$SCR/ulim" 4000000 "${BT[@]}" --init-from "$p" --max-steps 1 --out "$MS/i-$f" ;;
    esac
done
# Wrong kinds of weight files.
simple 60 refuse "--base|UNet|controlnet|kind" misc-base-is-controlnet misc "sample --base a ControlNet file refused" -- \
    "$CN" sample --base "$CTRL" --count 2 --steps 1 --grid "$MS/k1.png"
simple 60 refuse "--control|ControlNet|kind|unet" misc-control-is-unet misc "sample --control a UNet file refused" -- \
    "$CN" sample --base "$BASE" --control "$BASE" --hints "$FX/hints.safetensors" --count 2 --steps 1 --grid "$MS/k2.png"
simple 60 refuse "--control|config" misc-control-other-config misc "sample --control of another config than the base refused" -- \
    "$CN" sample --base "$MNIST_BASE" --control "$CTRL" --hints-from test --data-dir "$DATA_DIR" --count 2 --steps 1 --grid "$MS/k3.png"
simple 60 refuse "--init-from|config" misc-init-from-other-config misc "train-base --config mnist --init-from a tiny UNet refused" -- \
    "$CN" train-base --data-dir "$DATA_DIR" --batch-size 2 --init-from "$BASE" --max-steps 1 --out "$MS/k4"
simple 60 refuse "--base|config" misc-base-other-config misc "train-controlnet --config mnist with a tiny base refused" -- \
    "$CN" train-controlnet --data-dir "$DATA_DIR" --batch-size 2 --base "$BASE" --max-steps 1 --out "$MS/k5"
simple 60 refuse "--base|config" misc-base-meta-config-lies misc "--base whose metadata claims the mnist config (tensors are tiny) refused" -- \
    "$CN" sample --base "$MS/base-mnistconfig.safetensors" --count 2 --steps 1 --grid "$MS/k6.png"
simple 60 refuse "--init-from|base|controlnet" misc-init-from-controlnet misc "train-base --init-from a ControlNet file refused" -- \
    "${BT[@]}" --init-from "$CTRL" --max-steps 1 --out "$MS/k7"
# Output paths that cannot be written.
simple 60 refuse "--grid|adir|directory" misc-grid-dir misc "sample --grid DIRECTORY refused" -- \
    "$CN" sample --base "$BASE" --count 2 --steps 1 --grid "$MS/adir"
simple 60 refuse "--grid|nodir" misc-grid-nodir misc "sample --grid in a missing directory refused" -- \
    "$CN" sample --base "$BASE" --count 2 --steps 1 --grid "$MS/nodir/x.png"
simple 20 okref "--grid|fifo" misc-grid-fifo misc "sample --grid FIFO (no reader): no hang" -- \
    "$CN" sample --base "$BASE" --count 2 --steps 1 --grid "$MS/fifo.safetensors"
simple 60 refuse "--out|adir|directory" misc-sample-out-dir misc "sample --out DIRECTORY refused" -- \
    "$CN" sample --base "$BASE" --count 2 --steps 1 --grid "$MS/o.png" --out "$MS/adir"
simple 60 refuse "--json|adir|directory" misc-eval-json-dir misc "eval --json DIRECTORY refused" -- \
    "$CN" eval --base "$BASE" --control "$CTRL" --count 2 --steps 1 --data-dir "$DATA_DIR" --json "$MS/adir"
simple 60 refuse "--out|adir|directory" misc-export-out-dir misc "export --out DIRECTORY refused" -- \
    "$CN" export "$FX/cn/checkpoints/step-00000006" --out "$MS/adir"
simple 60 refuse "--out|nodir" misc-export-out-nodir misc "export --out in a missing directory refused" -- \
    "$CN" export "$FX/cn/checkpoints/step-00000006" --out "$MS/nodir/x.safetensors"
simple 20 okref "--out|fifo" misc-export-out-fifo misc "export --out FIFO (no reader): no hang" -- \
    "$CN" export "$FX/cn/checkpoints/step-00000006" --out "$MS/fifo.safetensors"
# export's argument.
simple 60 refuse "checkpoint|missing" misc-export-missing misc "export of a missing directory refused" -- "$CN" export "$MS/missing" --out "$MS/x1.safetensors"
simple 60 refuse "checkpoint|manifest|empty.safetensors" misc-export-file misc "export of a file (not a directory) refused" -- "$CN" export "$MS/empty.safetensors" --out "$MS/x2.safetensors"
simple 60 refuse "checkpoint|manifest|adir" misc-export-empty-dir misc "export of an empty directory refused" -- "$CN" export "$MS/adir" --out "$MS/x3.safetensors"
simple 60 refuse "checkpoint|latest" misc-export-latest-none misc "export latest:DIR with no checkpoints refused" -- "$CN" export "latest:$MS/adir" --out "$MS/x4.safetensors"
simple 60 refuse "checkpoint|latest" misc-export-latest-empty misc "export latest: (no directory) refused" -- "$CN" export "latest:" --out "$MS/x5.safetensors"
simple 60 refuse "checkpoint|latest|missing" misc-export-latest-missing misc "export latest:/missing refused" -- "$CN" export "latest:$MS/missing" --out "$MS/x6.safetensors"
simple 60 refuse "out" misc-export-no-out misc "export without --out refused" -- "$CN" export "$FX/cn/checkpoints/step-00000006"
probe misc-export-base-mode misc "export of a base-mode checkpoint: a UNet file identical to the run's unet.safetensors" && {
    runc 60 "$CN" export "$FX/bck/checkpoints/step-00000004" --out "$MS/xb.safetensors"; want_ok
    run 30 "$CN" diff-weights "$MS/xb.safetensors" "$FX/bck/unet.safetensors" --tolerance 0; want_ok; end_probe; }
probe misc-export-np2 misc "export of a 2-rank checkpoint equals the run's controlnet.safetensors" && {
    runc 60 "$CN" export "latest:$FX/cn2" --out "$MS/x2r.safetensors"; want_ok
    run 30 "$CN" diff-weights "$MS/x2r.safetensors" "$FX/cn2/controlnet.safetensors" --tolerance 0; want_ok; end_probe; }
# diff-weights mismatches.
pt rename "$CTRL" "$MS/renamed.safetensors" other_name
simple 60 refuse "names|other_name" misc-diff-names misc "diff-weights with different tensor names refused naming them" -- "$CN" diff-weights "$CTRL" "$MS/renamed.safetensors"
simple 60 refuse "values|count|shape|names" misc-diff-other-model misc "diff-weights of a UNet vs a ControlNet refused" -- "$CN" diff-weights "$BASE" "$CTRL"
simple 60 refuse "missing" misc-diff-missing misc "diff-weights with a missing file refused naming it" -- "$CN" diff-weights "$MS/missing.safetensors" "$CTRL"
simple 60 refuse "diff|argument|Missing" misc-diff-one-arg misc "diff-weights with one argument refused" -- "$CN" diff-weights "$CTRL"
pt hints "$MS/i64-a.safetensors" 1 1 2 2 1 - - I64
pt hints "$MS/i64-b.safetensors" 1 1 2 2 2 - - I64
simple 60 refuse "hints|I64|dtype" misc-diff-i64 misc "diff-weights of I64 tensors refused naming the dtype, or compared" -- "$CN" diff-weights "$MS/i64-a.safetensors" "$MS/i64-b.safetensors"
probe misc-diff-empty-tensors misc "diff-weights of two files with an empty tensor: valid JSON" && {
    runc 30 "$CN" diff-weights "$MS/empty-tensor.safetensors" "$MS/empty-tensor.safetensors"; want_ok
    grep '^{' "$LOG" >"$LOG.json"; pt json "$LOG.json" >/dev/null 2>&1 || bad "not valid JSON"; end_probe; }
# info / bench / bench-sgemm / comm-check.
simple 30 ok "" misc-info-plain misc "info" -- "$CN" info
simple 30 ok "" misc-info-blas misc "info --blas-coretype" -- "$CN" info --blas-coretype
simple 30 refuse "config|bogus" misc-info-bogus-config misc "info --config bogus refused" -- "$CN" info --config bogus
for c in mnist mnist-class tiny tiny-class; do
    simple 30 ok "" "misc-info-$c" misc "info --config $c" -- "$CN" info --config "$c"
done
simple 30 refuse "mode|bogus" misc-bench-mode misc "bench --mode bogus refused" -- "$CN" bench --mode bogus
simple 30 refuse "torch|missing" misc-bench-torch-missing misc "bench --torch /missing refused" -- "$CN" bench --config tiny --batch-size 2 --steps 1 --warmup 0 --torch "$MS/missing"
simple 60 ok "" misc-bench-convs misc "bench --convs tiny" -- "$CN" bench --convs --config tiny --batch-size 2 --steps 1
simple 60 ok "" misc-bench-base misc "bench --mode base tiny" -- "$CN" bench --mode base --config tiny --batch-size 2 --steps 1 --warmup 0
simple 60 ok "" misc-sgemm misc "bench-sgemm tiny" -- "$CN" bench-sgemm --config tiny --batch 1 --repeats 1
simple 60 ok "" misc-comm-check-1 misc "comm-check in one process" -- "$CN" comm-check --count 1000 --repeats 2
simple 60 refuse "die-how|bogus" misc-comm-die-how misc "comm-check --die-how bogus refused" -- "$CN" comm-check --die-how bogus
simple 60 ok "" misc-comm-check-np2 misc "comm-check under mpirun np 2" -- "${MPI[@]}" -np 2 "$CN" comm-check --count 1000 --repeats 2
simple 60 refuse "--die-rank" misc-comm-die-rank-beyond misc "comm-check --die-rank 7 with 2 ranks refused" -- \
    "${MPI[@]}" -np 2 "$CN" comm-check --count 1000 --repeats 2 --loop-seconds 1 --die-rank 7
probe misc-comm-die-rank misc "comm-check --die-rank 1 --die-how exit: the job fails fast (<= 30 s), no hang" && {
    runc 60 "${MPI[@]}" -np 2 "$CN" comm-check --count 1000 --repeats 2 --loop-seconds 20 --die-rank 1 --die-after-seconds 1 --die-how exit
    want_fail; [ "$(printf '%.0f' "$P_T")" -le 30 ] || bad "took $P_T s"; end_probe; }
# Top-level argument errors.
simple 30 refuse "bogus|Unknown|subcommand" misc-unknown-subcommand misc "an unknown subcommand refused" -- "$CN" bogus
simple 30 refuse "--bogus|Unknown" misc-unknown-option misc "train-base --bogus refused naming it" -- "${BT[@]}" --bogus --out "$MS/u1"
simple 30 refuse "--hint|bogus" misc-train-hint-bogus misc "train-controlnet --hint bogus refused naming --hint" -- "${CT[@]}" --hint bogus --max-steps 1 --out "$MS/u2"
simple 30 refuse "--hint|bogus" misc-sample-hint-bogus misc "sample --hint bogus refused naming --hint" -- \
    "$CN" sample --base "$BASE" --control "$CTRL" --hints-from test --hint bogus --count 2 --steps 1 --grid "$MS/u3.png"
simple 30 refuse "--lr-schedule|bogus" misc-lr-schedule-bogus misc "--lr-schedule bogus refused naming it" -- "${BT[@]}" --lr-schedule bogus --max-steps 1 --out "$MS/u4"
simple 30 refuse "--epochs|--max-steps" misc-epochs-and-steps misc "--epochs with --max-steps refused" -- "${BT[@]}" --epochs 1 --max-steps 1 --out "$MS/u5"
simple 30 refuse "--base" misc-cn-no-base misc "train-controlnet without --base refused naming --base" -- "$CN" train-controlnet --config tiny --resize --data-dir "$DATA_DIR" --max-steps 1 --out "$MS/u6"
simple 30 refuse "--base" misc-base-with-base misc "train-base with --base refused naming --base" -- "${BT[@]}" --base "$BASE" --max-steps 1 --out "$MS/u7"
simple 30 refuse "--init-from" misc-cn-init-from misc "train-controlnet with --init-from refused naming it" -- "${CT[@]}" --init-from "$BASE" --max-steps 1 --out "$MS/u8"
simple 30 refuse "--data|bogus" misc-data-bogus misc "--data bogus (no such preset or file) refused naming it" -- "${BT[@]}" --data bogus --max-steps 1 --out "$MS/u9"
simple 30 refuse "--data|adir|director" misc-data-dir misc "--data DIRECTORY refused" -- "${BT[@]}" --data "$MS/adir" --max-steps 1 --out "$MS/u10"
simple 20 refuse "--data|/dev/zero|regular" misc-data-devzero misc "--data /dev/zero refused, no hang" -- "$SCR/ulim" 4000000 "${BT[@]}" --data /dev/zero --max-steps 1 --out "$MS/u11"
simple 20 refuse "--data|fifo|regular" misc-data-fifo misc "--data FIFO refused, no hang" -- "${BT[@]}" --data "$MS/fifo.safetensors" --max-steps 1 --out "$MS/u12"
simple 30 refuse "data-dir|mnist_5k|missing" misc-data-dir-missing misc "--data-dir missing refused naming it" -- "$CN" train-base --config tiny --resize --data-dir "$MS/missing" --max-steps 1 --out "$MS/u13"
simple 30 refuse "--data|size|--resize|28|8" misc-no-resize misc "tiny config on 28x28 data without --resize refused naming --resize" -- \
    "$CN" train-base --config tiny --data-dir "$DATA_DIR" --max-steps 1 --out "$MS/u14"
simple 30 refuse "--control|hints" misc-sample-control-no-hints misc "sample --control without hints refused" -- \
    "$CN" sample --base "$BASE" --control "$CTRL" --count 2 --steps 1 --grid "$MS/u15.png"
simple 30 refuse "--control|eval" misc-eval-no-control misc "eval without --control refused" -- "$CN" eval --base "$BASE" --count 2 --steps 1
simple 30 refuse "--hints-from|--hints" misc-sample-both-hints misc "sample --hints-from and --hints together refused" -- \
    "$CN" sample --base "$BASE" --control "$CTRL" --hints-from test --hints "$FX/hints.safetensors" --count 2 --steps 1 --grid "$MS/u16.png"
simple 30 refuse "--base|missing" misc-sample-base-missing misc "sample --base missing refused naming it" -- "$CN" sample --base "$MS/missing.safetensors" --grid "$MS/u17.png"
simple 30 refuse "missing.csv|--data|dataset" misc-eval-data-missing misc "eval --data naming a missing CSV refused naming it" -- \
    "$CN" eval --base "$BASE" --control "$CTRL" --count 2 --steps 1 --data-dir "$DATA_DIR" --data "$MS/missing.csv"
simple 30 okref "--label" misc-sample-label-none misc "sample --label 3 (= none) with the 3-class base" -- \
    "$CN" sample --base "$CBASE" --count 2 --steps 1 --label 3 --grid "$MS/u18.png"
simple 60 ok "" misc-sample-ddpm misc "sample --sampler ddpm (1000 steps) tiny, 2 samples" -- \
    "$CN" sample --base "$BASE" --sampler ddpm --count 2 --grid "$MS/u19.png"
simple 30 okref "--steps|ddpm" misc-sample-ddpm-steps misc "sample --sampler ddpm --steps 5 (steps ignored or refused)" -- \
    "$CN" sample --base "$BASE" --sampler ddpm --steps 5 --count 2 --grid "$MS/u20.png"
simple 60 ok "" misc-sample-multi-control misc "sample with three --control files" -- \
    "$CN" sample --base "$BASE" --control "$CTRL" --control "$CTRL:0.5" --control "$CTRL:-1" --hints "$FX/hints.safetensors" --count 2 --steps 1 --guess-mode --grid "$MS/u21.png"
simple 60 okref "--hint" misc-sample-hint-random misc "sample --hints-from test --hint canny-random" -- \
    "$CN" sample --base "$BASE" --control "$CTRL" --hints-from test --hint canny-random --count 2 --steps 1 --data-dir "$DATA_DIR" --grid "$MS/u22.png"
simple 60 ok "" misc-sample-count-1-columns-50 misc "sample --count 1 --columns 50" -- \
    "$CN" sample --base "$BASE" --count 1 --columns 50 --steps 1 --grid "$MS/u23.png"
simple 60 okref "--validation-count" misc-validation-base misc "train-base with --validation-steps (unconditional previews)" -- \
    "${BT[@]}" --max-steps 2 --validation-steps 1 --validation-count 3 --out "$MS/u24"
simple 60 okref "--inject-nonfinite" misc-inject-nonfinite-bogus misc "--inject-nonfinite 'x:y' refused naming it" -- \
    "${CT[@]}" --max-steps 2 --inject-nonfinite x:y --out "$MS/u25"
probe misc-ten-nonfinite-abort misc "ten non-finite steps in a row abort with a clear error, status failed, exit < 128" && {
    runc 60 "${CT[@]}" --max-steps 20 --inject-nonfinite 1 --inject-nonfinite 2 --inject-nonfinite 3 --inject-nonfinite 4 --inject-nonfinite 5 \
        --inject-nonfinite 6 --inject-nonfinite 7 --inject-nonfinite 8 --inject-nonfinite 9 --inject-nonfinite 10 --inject-nonfinite 11 --out "$MS/u26"
    want_fail; want_msg 'non-finite|NaN|skipped'; st=$(pt status "$MS/u26" 2>/dev/null); [[ "$st" == failed* ]] || bad "status.json says '$st'"; end_probe; }

# ---------------------------------------------------------------------------------------------------------------
echo
for c in "${!CLASS_TOTAL[@]}"; do echo "class $c: ${CLASS_TOTAL[$c]} probes, ${CLASS_FAILED[$c]:-0} failed"; done | sort
echo "$TOTAL probes, $FAILED failed ($(( $(date +%s) - T0 )) s)"
[ "$FAILED" = 0 ]
