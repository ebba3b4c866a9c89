#!/usr/bin/env bash
# MovieLens 100k for the recommendation evaluation, taken from the `recbole` wheel on PyPI (it ships
# the dataset as RecBole atomic files). Idempotent: does nothing when the data is already there.
# Result: data/ai/ml-100k/ml-100k.inter (user, item, rating, timestamp; tab-separated, one header).
set -euo pipefail

RECBOLE_VERSION=1.2.1
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/data/ai/ml-100k"
inter="$dest/ml-100k.inter"

if [[ -s "$inter" ]]; then
  echo "ml-100k already in $dest"
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
pip download --quiet --no-deps "recbole==$RECBOLE_VERSION" -d "$tmp"
wheel="$(ls "$tmp"/recbole-"$RECBOLE_VERSION"-*.whl)"
mkdir -p "$dest"
python3 - "$wheel" "$dest" <<'PY'
import sys, zipfile, os
wheel, dest = sys.argv[1], sys.argv[2]
prefix = "recbole/dataset_example/ml-100k/"
with zipfile.ZipFile(wheel) as z:
    for name in ("ml-100k.inter", "ml-100k.item", "ml-100k.user"):
        data = z.read(prefix + name)
        tmp = os.path.join(dest, name + ".part")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, os.path.join(dest, name))
PY
lines=$(wc -l < "$inter")
echo "ml-100k extracted to $dest ($((lines - 1)) ratings)"
