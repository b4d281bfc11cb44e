#!/usr/bin/env bash
# The other commands refuse bad input the same way - a non-zero exit below 128 (never a crash), a message naming
# the option or file, and nothing destroyed: sample with zero columns or an empty / non-finite / out-of-range
# hints file, a control scale of nan, an output that is an input (sample --out/--grid over the base, export
# into the checkpoint it reads), export over an existing file, an empty --out, a bad --validation-data (refused
# before the run directory exists), guidance without classes, a directory as a weight file, sample and eval outputs
# over a file of another kind; diff-weights stays JSON for a file holding NaN and fails its tolerance; a gzip bomb
# given as --data is refused at the size its header declares.
source "$(dirname "$0")/lib.sh"
ensure_controlnet
training_env

scratch_dir

train_tiny_base "$TMP/base"
BASE=$TMP/base/unet.safetensors
base_sha=$(sha256sum "$BASE" | cut -d' ' -f1)
"$CONTROLNET" train-controlnet --config tiny --resize --data-dir "$REPO_ROOT/data" --base "$BASE" --max-steps 2 \
    --batch-size 8 --checkpoint-every 2 --out "$TMP/cn" >"$TMP/cn.log" 2>&1 || { cat "$TMP/cn.log"; fail "training failed"; }
CN=$TMP/cn/controlnet.safetensors
CKPT=$TMP/cn/checkpoints/step-00000002
ckpt_before=$(cd "$CKPT" && sha256sum ./* | sort)

# hints_file PATH N VALUE: a safetensors file with tensor `hints` of shape [N, 1, 8, 8] filled with VALUE.
hints_file() {
    python3 - "$@" <<'PY'
import json, struct, sys
path, n, value = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
data = struct.pack("<%df" % (n * 64), *([value] * (n * 64)))
header = json.dumps({"hints": {"dtype": "F32", "shape": [n, 1, 8, 8], "data_offsets": [0, len(data)]}}).encode()
header += b" " * ((8 - len(header) % 8) % 8)
open(path, "wb").write(struct.pack("<Q", len(header)) + header + data)
PY
}
hints_file "$TMP/empty-hints.safetensors" 0 0
hints_file "$TMP/nan-hints.safetensors" 2 nan
hints_file "$TMP/big-hints.safetensors" 2 5.0
hints_file "$TMP/good-hints.safetensors" 2 1.0

case_number=0
# refused EXPECTED-REGEX CMD...: a non-zero exit below 128 within 60 s, and a message matching EXPECTED-REGEX.
refused() {
    local expected=$1 status
    shift
    case_number=$((case_number + 1))
    set +e
    timeout -k 5 60 "$@" >"$TMP/case-$case_number.log" 2>&1
    status=$?
    set -e
    echo "-- ${*#"$CONTROLNET"} -> exit $status: $(grep -v '^$' "$TMP/case-$case_number.log" | head -n 2 | tr '\n' ' ')"
    [ "$status" -ne 0 ] || fail "accepted: $*"
    [ "$status" -lt 124 ] || fail "crashed, hung or was killed (exit $status): $*"
    grep -qE -- "$expected" "$TMP/case-$case_number.log" || fail "the message for '$*' does not match /$expected/"
}

S=("$CONTROLNET" sample --base "$BASE" --steps 2 --count 2)
refused "--columns must be at least 1, got 0" "${S[@]}" --columns 0 --grid "$TMP/g.png"
refused "needs a tensor .hints. of shape \[N >= 1" "${S[@]}" --control "$CN" --hints "$TMP/empty-hints.safetensors" --grid "$TMP/g.png"
refused "holds nan at element 0; hints must be finite and in \[0, 1\]" "${S[@]}" --control "$CN" --hints "$TMP/nan-hints.safetensors" --grid "$TMP/g.png"
refused "holds 5.0 at element 0" "${S[@]}" --control "$CN" --hints "$TMP/big-hints.safetensors" --grid "$TMP/g.png"
refused "--control: .*:nan: the scale must be a finite number" "${S[@]}" --control "$CN:nan" --hints "$TMP/good-hints.safetensors" --grid "$TMP/g.png"
refused "--out: .*is also the input of --base" "${S[@]}" --grid "$TMP/g.png" --out "$BASE"
refused "--grid: .*is also the input of --control" "${S[@]}" --control "$CN" --hints "$TMP/good-hints.safetensors" --grid "$CN"
refused "--out: .*is also the output of --grid" "${S[@]}" --grid "$TMP/g.png" --out "$TMP/g.png"
refused "--json: .*is also the input of --base" "$CONTROLNET" eval --base "$BASE" --control "$CN" --count 2 --steps 2 --data-dir "$REPO_ROOT/data" --json "$BASE"
refused "--out: .*shard-00000-of-00001.safetensors is also the input of checkpoint" \
    "$CONTROLNET" export "$CKPT" --out "$CKPT/shard-00000-of-00001.safetensors"
refused "--out: .*is also the input of checkpoint" "$CONTROLNET" export "latest:$TMP/cn" --out "$CKPT/manifest.json"
# export refuses an existing file (another run's weights) unless --overwrite, and an empty --out (an unset variable)
refused "--out: .*exists; choose a new file, or pass --overwrite" "$CONTROLNET" export "$CKPT" --out "$BASE"
refused "--out: is empty" "$CONTROLNET" export "$CKPT" --out ""
cp "$CN" "$TMP/replaced.safetensors"
"$CONTROLNET" export "$CKPT" --out "$TMP/replaced.safetensors" --overwrite >/dev/null || fail "export --overwrite failed"
refused "--out: is empty" "$CONTROLNET" train-controlnet --config tiny --resize --data-dir "$REPO_ROOT/data" --base "$BASE" \
    --max-steps 1 --out ""
# a bad validation set is refused by option before the run directory exists
refused "--validation-data: .*nope" "$CONTROLNET" train-controlnet --config tiny --resize --data-dir "$REPO_ROOT/data" \
    --base "$BASE" --max-steps 1 --validation-steps 1 --validation-data "$TMP/nope" --out "$TMP/vd"
[ ! -e "$TMP/vd" ] || fail "a refused --validation-data left $TMP/vd"
# guidance on a model without classes; --torch-amp without --torch; a directory given as --base
refused "--cfg-scale 3.0 needs a class-conditional model" "${S[@]}" --cfg-scale 3 --grid "$TMP/g.png"
refused "--torch-amp sets PyTorch's precision for --torch DIR" "$CONTROLNET" bench --torch-amp bf16 --steps 1
refused "$TMP/cn: .*it is a directory, not a file" "${S[@]}" --control "$TMP/cn" --hints "$TMP/good-hints.safetensors" --grid "$TMP/g.png"
# sample and eval replace their own outputs, never a file of another kind at the same path (weights, say)
cp "$CN" "$TMP/weights.safetensors"
weights_sha=$(sha256sum "$TMP/weights.safetensors" | cut -d' ' -f1)
refused "--out: .*weights.safetensors exists and is not a samples file" "${S[@]}" --grid "$TMP/g.png" --out "$TMP/weights.safetensors"
refused "--grid: .*weights.safetensors exists and is not a PNG image" "${S[@]}" --grid "$TMP/weights.safetensors"
refused "--json: .*weights.safetensors exists and is not a JSON report" "$CONTROLNET" eval --base "$BASE" --control "$CN" \
    --count 2 --steps 2 --data-dir "$REPO_ROOT/data" --json "$TMP/weights.safetensors"
[ "$(sha256sum "$TMP/weights.safetensors" | cut -d' ' -f1)" = "$weights_sha" ] || fail "a refused output replaced the weights"
"${S[@]}" --grid "$TMP/again.png" --out "$TMP/again.safetensors" >/dev/null 2>&1 || fail "a first sample failed"
"${S[@]}" --grid "$TMP/again.png" --out "$TMP/again.safetensors" >/dev/null 2>&1 || fail "sample did not replace its own outputs"
# an output whose directory is missing is refused before the sampling, not after it
refused "--grid: .*its directory .*/missing does not exist" "${S[@]}" --grid "$TMP/missing/g.png"
# bench-sgemm --shapes from a file: a negative side crashed it, 100000^3 asked for 40 GB
printf '{"gemmShapesPerStep":[{"calls":1,"seconds":0,"shape":{"caller":"x","k":64,"m":-5,"n":49,"transA":false,"transB":false}}]}' \
    >"$TMP/shapes.json"
refused "--shapes .*has m = -5; each side must be in 1...65536" "$CONTROLNET" bench-sgemm --shapes "$TMP/shapes.json"
[ "$(sha256sum "$BASE" | cut -d' ' -f1)" = "$base_sha" ] || fail "the base changed"
[ "$(cd "$CKPT" && sha256sum ./* | sort)" = "$ckpt_before" ] || fail "the checkpoint changed"
"${S[@]}" --control "$CN" --hints "$TMP/good-hints.safetensors" --grid "$TMP/g.png" >/dev/null 2>&1 || fail "a good sample failed"

# diff-weights: a NaN is an infinite difference, written as JSON, and fails a tolerance.
python3 - "$BASE" "$TMP/nan.safetensors" <<'PY'
import json, struct, sys
raw = bytearray(open(sys.argv[1], "rb").read())
n = struct.unpack("<Q", raw[:8])[0]
start = json.loads(raw[8:8 + n])["out.conv.bias"]["data_offsets"][0] + 8 + n
raw[start:start + 4] = struct.pack("<f", float("nan"))
open(sys.argv[2], "wb").write(raw)
PY
set +e
"$CONTROLNET" diff-weights "$BASE" "$TMP/nan.safetensors" --tolerance 1 >"$TMP/diff.json" 2>&1
status=$?
set -e
cat "$TMP/diff.json"
[ "$status" = 1 ] || fail "diff-weights with a NaN passed a tolerance of 1 (exit $status)"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["max_abs_diff"]=="inf" and r["non_finite_values"]==1 and r["worst_tensor"]=="out.conv.bias", r' "$TMP/diff.json" \
    || fail "diff-weights did not report the NaN as valid JSON"

# A 2 MB gzip bomb (an IDX header for 10 images, then 2 GiB of zeros) as --data.
python3 - "$TMP/bomb-images-idx3-ubyte.gz" <<'PY'
import gzip, struct, sys
with gzip.open(sys.argv[1], "wb", compresslevel=1) as f:
    f.write(struct.pack(">IIII", 0x803, 10, 28, 28))
    zeros = bytes(1 << 24)
    for _ in range(128): f.write(zeros)
PY
start=$(now_seconds)
refused "larger than the .* its header declares" \
    "$CONTROLNET" train-base --config mnist --data "$TMP/bomb-images-idx3-ubyte.gz" --max-steps 1 --batch-size 2 --out "$TMP/bomb-run"
elapsed=$(echo "$(now_seconds) - $start" | bc)
echo "gzip bomb refused in $elapsed s"
[ ! -e "$TMP/bomb-run" ] || fail "the refused run left $TMP/bomb-run behind"
echo "PASS $(basename "$0") ($case_number refusals, diff-weights, gzip bomb)"
