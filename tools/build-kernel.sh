#!/usr/bin/env bash
# Builds the kernel and appends its KASLR relocation table (tools/kaslr-relocs.py);
# prints the kernel's path. Usage: tools/build-kernel.sh [--release]
# Honours CARGO_TARGET_DIR. Used by qemu-run.sh, bench/side-by-side.sh and the guest
# test harness, so the three boot the same kind of image.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
profile=debug flags=(--target x86_64-unknown-none)
case ${1:-} in
  --release) profile=release flags+=(--release) ;;
  "") ;;
  *) echo "build-kernel.sh: unknown argument $1" >&2; exit 2 ;;
esac
(cd "$here" && cargo build -q -p kernel "${flags[@]}")
kernel=${CARGO_TARGET_DIR:-$here/target}/x86_64-unknown-none/$profile/kernel
python3 "$here/tools/kaslr-relocs.py" "$kernel" >/dev/null
echo "$kernel"
