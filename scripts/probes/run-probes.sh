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
[ -f "$DATA_DIR/mnist_5k.csv.gz" ] || { echo "no $DATA_DIR/mnist_5k.csv.gz (run scripts/setup.sh or set PROBE_DATA_DIR)" >&2; exit 2; }
MNIST_BASE=${PROBE_MNIST_BASE:-$REPO_ROOT/models/mnist-base.safetensors}
FILTER=${PROBE_FILTER:-}

export CONTROLNET_PROGRESS=lines OPENBLAS_NUM_THREADS=1
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
MPI=(mpirun --mca pml ob1 --mca btl self,vader --bind-to none -x OPENBLAS_NUM_THREADS=1 -x CONTROLNET_PROGRESS)

SCR=$(mktemp -d "${PROBE_TMP:-/tmp}/controlnet-probes.XXXXXX")
MOUNTS=()
BG_PIDS=()
cleanup() {
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
import gzip, hashlib, json, math, os, re, struct, sys

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
elif cmd == 'gzbomb':          # gzbomb OUT PREFIX-KIND MEGABYTES: gzip of a header + zeros (streamed)
    out, kind, mb = a[0], a[1], int(a[2])
    with gzip.open(out, 'wb', compresslevel=9) as f:
        if kind == 'idx': f.write(struct.pack('>IIII', 0x00000803, 10, 28, 28))
        elif kind == 'idxbig': f.write(struct.pack('>IIII', 0x00000803, 0x7fffffff, 28, 28))
        elif kind == 'csv': f.write(b'label,' + b','.join(b'p%d' % i for i in range(784)) + b'\n')
        zero = b'\0' * (1 << 20) if kind != 'csvrow' else (b'0,' * (1 << 19))
        for _ in range(mb): f.write(zero)
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
fresh_run() { rm -rf "$1"; cp -a "$FX/cn" "$1"; }
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
for kb in 16000000 4000000 1500000 500000 200000; do
    simple 60 okref "$MEM_RE" "mem-sample-mnist-$kb" mem "sample (mnist base, 4 samples) under ulimit -v $kb" -- \
        "$SCR/ulim" "$kb" "$CN" sample --base "$MNIST_BASE" --count 4 --steps 2 --grid "$SCR/p/mem-s-$kb.png" --data-dir "$DATA_DIR"
    simple 60 okref "$MEM_RE" "mem-sample-ctrl-$kb" mem "sample with a ControlNet and held-out hints under ulimit -v $kb" -- \
        "$SCR/ulim" "$kb" "$CN" sample --base "$BASE" --control "$CTRL" --hints-from test --count 4 --steps 2 \
        --grid "$SCR/p/mem-sc-$kb.png" --out "$SCR/p/mem-sc-$kb.safetensors" --data-dir "$DATA_DIR"
    simple 60 okref "$MEM_RE" "mem-eval-$kb" mem "eval under ulimit -v $kb" -- \
        "$SCR/ulim" "$kb" "$CN" eval --base "$BASE" --control "$CTRL" --count 4 --steps 2 --data-dir "$DATA_DIR" \
        --json "$SCR/p/mem-e-$kb.json" --grid "$SCR/p/mem-e-$kb.png"
    simple 60 okref "$MEM_RE" "mem-train-base-tiny-$kb" mem "train-base tiny under ulimit -v $kb" -- \
        "$SCR/ulim" "$kb" "${BT[@]}" --max-steps 2 --out "$SCR/p/mem-tb-$kb"
    simple 60 okref "$MEM_RE" "mem-train-base-mnist-$kb" mem "train-base mnist (batch 4, 1 step) under ulimit -v $kb" -- \
        "$SCR/ulim" "$kb" "$CN" train-base --data-dir "$DATA_DIR" --batch-size 4 --max-steps 1 --out "$SCR/p/mem-tbm-$kb"
    simple 60 okref "$MEM_RE" "mem-train-cn-tiny-$kb" mem "train-controlnet tiny with checkpoint+preview under ulimit -v $kb" -- \
        "$SCR/ulim" "$kb" "${CT[@]}" --max-steps 2 --checkpoint-every 1 --validation-steps 2 --validation-count 4 --out "$SCR/p/mem-tc-$kb"
    simple 60 okref "$MEM_RE" "mem-train-cn-mnist-$kb" mem "train-controlnet mnist (batch 4, 1 step) under ulimit -v $kb" -- \
        "$SCR/ulim" "$kb" "$CN" train-controlnet --base "$MNIST_BASE" --data-dir "$DATA_DIR" --batch-size 4 --max-steps 1 --out "$SCR/p/mem-tcm-$kb"
    simple 60 okref "$MEM_RE" "mem-info-$kb" mem "info --config mnist under ulimit -v $kb" -- \
        "$SCR/ulim" "$kb" "$CN" info --config mnist
    simple 60 okref "$MEM_RE" "mem-bench-$kb" mem "bench tiny under ulimit -v $kb" -- \
        "$SCR/ulim" "$kb" "$CN" bench --config tiny --batch-size 4 --steps 1 --warmup 0
    simple 60 okref "$MEM_RE" "mem-bench-mnist-$kb" mem "bench mnist base mode batch 8 under ulimit -v $kb" -- \
        "$SCR/ulim" "$kb" "$CN" bench --mode base --config mnist --batch-size 8 --steps 1 --warmup 0 --no-profile
    simple 60 okref "$MEM_RE" "mem-export-$kb" mem "export under ulimit -v $kb" -- \
        "$SCR/ulim" "$kb" "$CN" export "$FX/cn/checkpoints/step-00000006" --out "$SCR/p/mem-x-$kb.safetensors"
    simple 60 okref "$MEM_RE" "mem-diff-$kb" mem "diff-weights of the mnist base with itself under ulimit -v $kb" -- \
        "$SCR/ulim" "$kb" "$CN" diff-weights "$MNIST_BASE" "$MNIST_BASE"
done
# The batch sizes a limit cannot hold must be refused with the batch that would fit.
simple 120 refuse '--batch-size' mem-mnist-batch-4096-1.5g mem "train-controlnet mnist batch 4096 under ulimit -v 1.5 GB refused naming --batch-size" -- \
    "$SCR/ulim" 1500000 "$CN" train-controlnet --base "$MNIST_BASE" --data-dir "$DATA_DIR" --batch-size 4096 --max-steps 1 --out "$SCR/p/mem-b4096"
simple 120 refuse '--batch-size' mem-mnist-batch-65536 mem "train-base mnist batch 65536 (no limit) refused naming --batch-size" -- \
    "$CN" train-base --data-dir "$DATA_DIR" --batch-size 65536 --max-steps 1 --out "$SCR/p/mem-b65536"
simple 60 okref "$MEM_RE" mem-sample-batch-huge mem "sample mnist --batch-size 100000 --count 2 under ulimit -v 4 GB" -- \
    "$SCR/ulim" 4000000 "$CN" sample --base "$MNIST_BASE" --count 2 --steps 1 --batch-size 100000 --grid "$SCR/p/mem-sbh.png" --data-dir "$DATA_DIR"
simple 60 okref "$MEM_RE" mem-sample-count-1e6 mem "sample tiny --count 1000000 --steps 1 under ulimit -v 1.5 GB" -- \
    "$SCR/ulim" 1500000 "$CN" sample --base "$BASE" --count 1000000 --steps 1 --grid "$SCR/p/mem-sc1e6.png" --data-dir "$DATA_DIR"
simple 60 okref "$MEM_RE" mem-bench-batch-4096 mem "bench mnist --batch-size 4096 under ulimit -v 1.5 GB" -- \
    "$SCR/ulim" 1500000 "$CN" bench --config mnist --batch-size 4096 --steps 1 --warmup 0
simple 60 okref "$MEM_RE" mem-eval-batch-huge mem "eval --batch-size 1000000 under ulimit -v 1.5 GB" -- \
    "$SCR/ulim" 1500000 "$CN" eval --base "$BASE" --control "$CTRL" --count 4 --steps 1 --batch-size 1000000 --data-dir "$DATA_DIR"
simple 60 okref "$MEM_RE" mem-2rank-500m mem "mpirun np 2 train-controlnet tiny, each rank under ulimit -v 500 MB" -- \
    "$SCR/ulim" 500000 "${MPI[@]}" -np 2 "${CT[@]}" --max-steps 2 --checkpoint-every 1 --out "$SCR/p/mem-np2"
simple 60 okref "$MEM_RE" mem-2rank-mnist-1.5g mem "mpirun np 2 train-controlnet mnist batch 512 under ulimit -v 1.5 GB" -- \
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
    for mode in cn base; do
        if [ $mode = cn ]; then cmd=("${CT[@]}"); else cmd=("${BT[@]}"); fi
        # --batch-size and --simulate-ranks come last so that they override the shared --batch-size 8.
        simple 120 "$expect" "$opt" "input-train-$mode-$n" input "train-$mode $opt '$val'" -- \
            "${cmd[@]}" "${extra[@]}" "$opt" "$val" --out "$SCR/p/input-train-$mode-$n"
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
    simple 120 "$expect" "$opt" "input-sample-$n" input "sample (base alone) $opt '$val'" -- \
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
    exp=refuse; [ "$val" = 100000000 ] && exp=okref
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
    "--threads 0 refuse" "--threads -1 refuse" "--threads 1000000 refuse" "--threads 9223372036854775807 refuse"
    "--batch-size 0 refuse" "--batch-size -1 refuse" "--batch-size 9223372036854775807 refuse" "--batch-size 100000000 refuse"
)
for spec in "${BENCH_NUMERIC[@]}"; do
    eval "set -- $spec"
    opt=$1 val=$2 expect=$3
    n=$((n + 1))
    simple 30 "$expect" "$opt" "input-bench-$n" input "bench $opt $val" -- \
        "$CN" bench --config tiny --batch-size 2 --steps 1 --warmup 0 "$opt" "$val"
done
SGEMM_NUMERIC=("--threads 0 refuse" "--threads 1000000 refuse" "--repeats 0 refuse" "--repeats 1000000000 refuse"
    "--batch 0 refuse" "--batch 9223372036854775807 refuse" "--batch 100000000 refuse")
for spec in "${SGEMM_NUMERIC[@]}"; do
    eval "set -- $spec"
    opt=$1 val=$2 expect=$3
    n=$((n + 1))
    simple 30 "$expect" "$opt" "input-sgemm-$n" input "bench-sgemm $opt $val" -- \
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
    simple 30 "$expect" "$opt" "input-comm-$n" input "comm-check $opt $val" -- \
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
io_case rundir-io-eval-json-base rundir "eval --json = --base refused" '--json' "$IO/base.safetensors" \
    "$CN" eval --base "$IO/base.safetensors" --control "$IO/ctrl.safetensors" --count 2 --steps 1 --data-dir "$DATA_DIR" --json "$IO/base-hard.safetensors"
io_case rundir-io-sample-grid-hints rundir "sample --grid = --hints (hard link) refused" '--grid' "$IO/hints.safetensors" \
    "${SAMPLE_IO[@]}" --grid "$IO/hints-hard.safetensors"
io_case rundir-io-sample-out-hints rundir "sample --out = --hints refused" '--out' "$IO/hints.safetensors" \
    "${SAMPLE_IO[@]}" --grid "$IO/g-h.png" --out "$IO/x/../hints.safetensors"
probe rundir-io-sample-grid-eq-out rundir "sample --grid and --out the same file refused naming one of them" && {
    runc 60 "${SAMPLE_IO[@]}" --grid "$IO/same.out" --out "$IO/x/../same.out"; want_refused '--out|--grid'
    [ -e "$IO/same.out" ] && bad "the file was written anyway"; end_probe; }
probe rundir-io-eval-json-eq-grid rundir "eval --json and --grid the same file refused" && {
    runc 60 "$CN" eval --base "$IO/base.safetensors" --control "$IO/ctrl.safetensors" --count 2 --steps 1 --data-dir "$DATA_DIR" --json "$IO/same2" --grid "$IO/same2"
    want_refused '--json|--grid'; end_probe; }
io_case rundir-io-sample-grid-second-control rundir "sample --grid = the second of two --control files refused" '--grid' "$IO/ctrl.safetensors" \
    "$CN" sample --base "$IO/base.safetensors" --control "$CTRL" --control "$IO/ctrl.safetensors:0.5" --hints "$IO/hints.safetensors" --count 2 --steps 1 --grid "$IO/ctrl-link.safetensors"
io_case rundir-io-sample-grid-control-scale rundir "sample --grid = --control given as FILE:SCALE refused" '--grid' "$IO/ctrl.safetensors" \
    "$CN" sample --base "$IO/base.safetensors" --control "$IO/ctrl.safetensors:2" --hints "$IO/hints.safetensors" --count 2 --steps 1 --grid "$IO/ctrl.safetensors"
io_case rundir-io-sample-grid-data rundir "sample --grid = the --data file (CSV) refused" '--grid' "$FX/mnist012.csv" \
    "$CN" sample --base "$IO/base.safetensors" --control "$IO/ctrl.safetensors" --hints-from test --data "$FX/mnist012.csv" --count 2 --steps 1 --grid "$FX/mnist012.csv"
# export.
EX=$SCR/p/ex; fresh_run "$EX/run"; S6=$EX/run/checkpoints/step-00000006
io_case rundir-io-export-shard rundir "export --out = the checkpoint's shard refused" '--out' "$S6" \
    "$CN" export "$S6" --out "$S6/shard-00000-of-00001.safetensors"
io_case rundir-io-export-manifest rundir "export --out = the checkpoint's manifest refused" '--out' "$S6" \
    "$CN" export "$S6" --out "$S6/manifest.json"
io_case rundir-io-export-newfile rundir "export --out = a new file inside the checkpoint directory refused" '--out' "$S6" \
    "$CN" export "$S6" --out "$S6/exported.safetensors"
io_case rundir-io-export-latest rundir "export latest:OUT --out = the newest shard (spelt via ../) refused" '--out' "$EX/run" \
    "$CN" export "latest:$EX/run" --out "$EX/run/checkpoints/../checkpoints/step-00000006/shard-00000-of-00001.safetensors"
ln "$S6/shard-00000-of-00001.safetensors" "$EX/shard-hard.safetensors"
io_case rundir-io-export-hardlink rundir "export --out = a hard link to the checkpoint's shard refused" '--out' "$S6" \
    "$CN" export "$S6" --out "$EX/shard-hard.safetensors"
io_case rundir-io-export-dir rundir "export --out = the checkpoint directory itself refused" '--out' "$S6" \
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
    "step-deleted|seal|\"step\" : 6,\n  \"trainable_count\"|\"trainable_count\""
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
    "trainable-count-2e9|seal|\"trainable_count\" : 22064|\"trainable_count\" : 2000000000|\"count\" : 22064|\"count\" : 2000000000"
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
    "data-deleted|seal|\"data\" : \\{[^}]*\\},|"
    "run-id-deleted|seal|\"run_id\" : \"[^\"]*\",|"
    "checksum-deleted|raw|\"manifest_sha256\" : \"[0-9a-f]*\",|"
    "checksum-empty|raw|\"manifest_sha256\" : \"[0-9a-f]*\"|\"manifest_sha256\" : \"\""
    "nul-byte|raw|\"created_at\" : \"|\"created_at\" : \"\\\\u0000"
    "deep-nesting|raw|^\\{|{\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],"
)
ME=$SCR/p/me
mkdir -p "$ME"
for spec in "${MANIFEST_EDITS[@]}"; do
    IFS='|' read -r -a parts <<<"$spec"
    name=${parts[0]} seal=${parts[1]}
    subs=("${parts[@]:2}")
    for cmd in resume export; do
        probe "rundir-manifest-$name-$cmd" rundir "edited manifest ($name, $seal) refused by $cmd without a crash" || continue
        out=$ME/$name-$cmd; fresh_run "$out"; rm -f "$out/controlnet.safetensors"
        # Only the newest checkpoint is edited; the older ones are made invalid too so that nothing else is picked.
        brk_flip_shard "$out/checkpoints/step-00000002"; brk_flip_shard "$out/checkpoints/step-00000004"
        pt reseal "$out/checkpoints/step-00000006/manifest.json" "$seal" "${subs[@]}" >"$SCR/logs/$P_ID.edit.log" 2>&1 \
            || bad "the probe's edit failed: $(cat "$SCR/logs/$P_ID.edit.log")"
        snap o "$out"
        if [ $cmd = resume ]; then
            runc 60 "${CT[@]}" --max-steps 8 --resume latest --out "$out"
        else
            runc 60 "$CN" export "$out/checkpoints/step-00000006" --out "$ME/$name.safetensors"
        fi
        want_refused 'manifest|step-00000006|checkpoint'
        unchanged o
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
