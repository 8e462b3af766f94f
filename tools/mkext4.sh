#!/usr/bin/env bash
# Builds the ext4 test image the guest mounts at /mnt (`qemu-run.sh --disk IMAGE`,
# and Linux through the anchor's `--disk`):
#   big.bin     16 MiB: the 64-bit word at byte offset o is o * 0x9e3779b97f4a7c15 ^ 0x5eed
#   sparse.bin  4 MiB: zeroes except "SPARSE-DATA" at 1 MiB (the rest are holes)
#   link        -> big.bin
#   dir/        a.txt ("alpha\n"), b.txt ("beta\n"), sub/
#   bin/        the programs given with --prog (static binaries)
#   files/      the files given with --file (e.g. a kernel module for the Linux anchor)
#   seq.bin     --seq-mib N: N MiB of that pattern too (readahead and benchmarks)
#   swapfile    --swapfile-mib N: an N MiB swap file (mkswap), every block allocated
#               (filled with 0xa5 first: mkfs.ext4 -d would leave zero blocks as holes)
#   swaphole.bin  with --swapfile-mib: a 1 MiB swap file whose pages after the header
#               are holes (swapon must refuse it)
# Usage: tools/mkext4.sh IMAGE [--seq-mib N] [--swapfile-mib N] [--prog PATH]... [--file PATH]...
# Installs e2fsprogs when mkfs.ext4 is missing. Rebuilds only when an input changed.
set -euo pipefail
[[ $# -ge 1 ]] || { echo "usage: $0 IMAGE [--seq-mib N] [--swapfile-mib N] [--prog PATH]... [--file PATH]..." >&2; exit 2; }
image=$1; shift
seq_mib=0 swapfile_mib=0 progs=() files=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --seq-mib) seq_mib=$2; shift 2;;
    --swapfile-mib) swapfile_mib=$2; shift 2;;
    --prog) progs+=("$2"); shift 2;;
    --file) files+=("$2"); shift 2;;
    *) echo "mkext4.sh: unknown option $1" >&2; exit 2;;
  esac
done
if ! command -v mkfs.ext4 >/dev/null && [[ ! -x /usr/sbin/mkfs.ext4 && ! -x /sbin/mkfs.ext4 ]]; then
  sudo=""; [[ $(id -u) -ne 0 ]] && sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq e2fsprogs >/dev/null
fi
PATH=$PATH:/usr/sbin:/sbin
stamp="$image.inputs"
want="seq=$seq_mib swapfile=$swapfile_mib $(for p in "${progs[@]}" "${files[@]}"; do sha1sum "$p"; done) $(sha1sum "$0")"
if [[ -f $image && -f $stamp && $(cat "$stamp") == "$want" ]]; then exit 0; fi

tree=$(mktemp -d); trap 'rm -rf "$tree"' EXIT
pattern() { # pattern FILE MIB
  python3 - "$1" "$2" <<'PY'
import sys, array
path, mib = sys.argv[1], int(sys.argv[2])
mask = (1 << 64) - 1
with open(path, "wb") as f:
    words = 1 << 17  # 1 MiB per chunk
    for chunk in range(mib):
        base = chunk * (words * 8)
        f.write(array.array("Q", (((base + 8 * i) * 0x9e3779b97f4a7c15) & mask ^ 0x5eed for i in range(words))).tobytes())
PY
}
pattern "$tree/big.bin" 16
(( seq_mib > 0 )) && pattern "$tree/seq.bin" "$seq_mib"
if (( swapfile_mib > 0 )); then
  head -c $((swapfile_mib << 20)) /dev/zero | tr '\0' '\245' > "$tree/swapfile"
  mkswap -q "$tree/swapfile" >/dev/null
  chmod 600 "$tree/swapfile"
  truncate -s 1M "$tree/swaphole.bin"
  mkswap -q "$tree/swaphole.bin" >/dev/null
  chmod 600 "$tree/swaphole.bin"
fi
truncate -s 4M "$tree/sparse.bin"
printf 'SPARSE-DATA' | dd of="$tree/sparse.bin" bs=1 seek=$((1 << 20)) conv=notrunc status=none
ln -s big.bin "$tree/link"
mkdir -p "$tree/dir/sub" "$tree/bin"
printf 'alpha\n' > "$tree/dir/a.txt"
printf 'beta\n' > "$tree/dir/b.txt"
for p in "${progs[@]}"; do install -m 755 "$p" "$tree/bin/"; done
if (( ${#files[@]} )); then mkdir -p "$tree/files"; for f in "${files[@]}"; do install -m 644 "$f" "$tree/files/"; done; fi
size_mib=$(( (du_kib=$(du -sk --apparent-size "$tree" | cut -f1)) / 1024 * 5 / 4 + 16 ))
mkdir -p "$(dirname "$image")"
rm -f "$image"
mkfs.ext4 -q -F -b 4096 -m 0 -O ^has_journal -E root_owner=0:0 -d "$tree" "$image" "${size_mib}M"
echo "$want" > "$stamp"
