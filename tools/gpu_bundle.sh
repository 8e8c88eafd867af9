#!/bin/sh
# gpu_bundle.sh: pack what `make gpu-check` needs into one archive, for a GPU
# machine that has the NVIDIA driver and the CUDA toolkit's libraries but not
# this project's Debian packages (`make gpu-bundle`):
#   build/owlore, build/tests/gpu/gpu_* (stripped);
#   lib/: the shared libraries they load (ldd), except the C and C++ runtimes
#         and CUDA's own (/usr/local/cuda), which that machine has;
#   data/: the stories260K model and the TinyStories and Alpaca files that
#         gpu-check trains on (from OWLORE_SHARED, default ../shared/data).
# On the GPU machine, from a checkout of the same commit:
#   mkdir -p /tmp/b && tar xJf bundle.tar.xz -C /tmp/b
#   LD_LIBRARY_PATH=/tmp/b/lib:/usr/local/cuda/lib64 BUILD=/tmp/b/build \
#       OWLORE_SHARED=/tmp/b/data sh tools/gpu_check.sh
set -e
out=${1:-.gpu/bundle.tar.xz}
BUILD=${BUILD:-build}
shared=${OWLORE_SHARED:-../shared/data}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/build/tests/gpu" "$tmp/lib" "$tmp/data/models/stories260K" \
    "$tmp/data/datasets/tinystories" "$tmp/data/datasets/alpaca"
cp "$BUILD/owlore" "$tmp/build/"
cp "$BUILD"/tests/gpu/gpu_* "$tmp/build/tests/gpu/"
for bin in "$tmp/build/owlore" "$tmp"/build/tests/gpu/gpu_*; do
    ldd "$bin" | awk '/=> \// { print $3 }'
done | sort -u |
    grep -Ev '^/usr/local/cuda|/(libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s)\.so' |
    while read -r lib; do cp -L "$lib" "$tmp/lib/"; done
strip "$tmp/build/owlore" "$tmp"/build/tests/gpu/gpu_* "$tmp"/lib/*
cp "$shared/models/stories260K/stories260K.bin" "$shared/models/stories260K/tok512.bin" \
    "$tmp/data/models/stories260K/"
cp "$shared/datasets/tinystories/tinystories_val.txt" "$tmp/data/datasets/tinystories/"
cp "$shared/datasets/alpaca/alpaca_tiny.json" "$tmp/data/datasets/alpaca/"
mkdir -p "$(dirname "$out")"
tar cJf "$out" -C "$tmp" .
echo "$out: $(du -h "$out" | cut -f1)"
