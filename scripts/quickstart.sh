#!/usr/bin/env bash
# The README's first command: prepares the machine, then (once it exists) trains a small MNIST ControlNet.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
echo "quickstart: the MNIST ControlNet quickstart is not yet available; setup is done and"
echo "quickstart: .build/release/controlnet is built (try: .build/release/controlnet info)"
