#!/usr/bin/env bash
# Measures single-thread image decode throughput (PNG/JPEG, 32x32 and 512x512) of the Datasets pipeline, built with
# the release flags (-Ounchecked -wmo) from the image sources alone, so that it needs no full release build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v swiftc >/dev/null && [ -x /opt/swift/usr/bin/swiftc ]; then export PATH="/opt/swift/usr/bin:$PATH"; fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
d=Sources/Datasets
swiftc -Ounchecked -wmo -parse-as-library -module-name DecodeBench -o "$out/bench" \
    -I Sources/CZlib -I Sources/CPNG -I Sources/CTurboJPEG \
    $d/ImageFile.swift $d/PNG.swift $d/PNGDecode.swift $d/JPEG.swift $d/ImageDataError.swift $d/DatasetError.swift \
    $d/ImageChannels.swift $d/ImageResize.swift $d/SplitMix64.swift $d/FillCircles.swift \
    scripts/bench/DecodeBench.swift -lpng16 -lturbojpeg -lz
echo "CPU: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1); libpng $(pkg-config --modversion libpng16), libjpeg-turbo $(pkg-config --modversion libturbojpeg)"
"$out/bench"
