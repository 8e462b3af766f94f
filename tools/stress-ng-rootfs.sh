#!/usr/bin/env bash
# Builds a root tree and an ext4 image holding Debian's own stress-ng (dynamically linked
# against glibc) and every shared library it needs, without installing anything on the
# host: the .deb files of stress-ng and its Depends, followed recursively, are fetched
# once with `apt-get download` into target/debian/stress-ng/debs/ and unpacked with
# `dpkg-deb -x` into target/debian/stress-ng/root/; `mkfs.ext4 -d` turns that tree into
# target/debian/stress-ng/rootfs.ext4. The tree carries the mount points a root needs
# (/proc, /sys, /dev, /dev/shm, /tmp). Prints the tree's path, then the image's.
#
#   tools/stress-ng-rootfs.sh          # root tree and image, downloaded on first use
#   ./qemu-run.sh --files "$(tools/stress-ng-rootfs.sh | head -n1)" --run /usr/bin/stress-ng ...
#   run-linux.sh --rootfs "$(tools/stress-ng-rootfs.sh | tail -n1)" /usr/bin/stress-ng ...
#
# Exit status 3 when the package archive cannot be reached (no network, no apt), so a
# caller can tell "unavailable" from "broken".
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dir=${CARGO_TARGET_DIR:-$here/target}/debian/stress-ng
root=$dir/root image=$dir/rootfs.ext4 debs=$dir/debs

# Every package stress-ng depends on, recursively (Depends and Pre-Depends only).
package_closure() {
  apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances stress-ng 2>/dev/null | grep -v '^ ' | sort -u
}

if [[ ! -f $dir/complete ]]; then
  command -v apt-get >/dev/null || { echo "stress-ng-rootfs.sh: no apt-get" >&2; exit 3; }
  packages=$(package_closure || true)
  if ! grep -qx stress-ng <<< "$packages"; then
    apt-get update -qq >/dev/null 2>&1 || true
    packages=$(package_closure || true)
  fi
  grep -qx stress-ng <<< "$packages" || {
    echo "stress-ng-rootfs.sh: apt knows no stress-ng package" >&2; exit 3; }
  rm -rf "$debs" "$root" "$image"
  mkdir -p "$debs"
  # shellcheck disable=SC2086 # one word per package
  (cd "$debs" && apt-get download $packages >/dev/null 2>&1) || {
    echo "stress-ng-rootfs.sh: apt-get download failed (network?)" >&2; exit 3; }
  mkdir -p "$root"
  for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$root"; done
  mkdir -p "$root"/{proc,sys,dev,tmp} "$root/dev/shm"
  chmod 1777 "$root/tmp"
  [[ -x $root/usr/bin/stress-ng && -e $root/lib64/ld-linux-x86-64.so.2 ]] || {
    echo "stress-ng-rootfs.sh: the unpacked tree lacks stress-ng or its loader" >&2; exit 1; }
  touch "$dir/complete"
fi

if [[ ! -f $image || $dir/complete -nt $image ]]; then
  command -v mkfs.ext4 >/dev/null || PATH=$PATH:/usr/sbin:/sbin
  size_mib=$(( $(du -sm "$root" | cut -f1) * 2 + 32 ))
  rm -f "$image"
  truncate -s "${size_mib}M" "$image"
  mkfs.ext4 -q -F -L stress-ng -d "$root" "$image" >/dev/null
fi
echo "$root"
echo "$image"
