#!/usr/bin/env bash
# Prints the path of a program from a Debian package, downloading and unpacking the
# package once into target/debian/<package>/ (apt-get download: no root install, the
# host's own packages untouched). Usage: tools/debian-bin.sh PACKAGE PATH-IN-PACKAGE
# e.g. tools/debian-bin.sh busybox-static bin/busybox
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
package=$1 path=$2
dir=${CARGO_TARGET_DIR:-$here/target}/debian/$package
if [[ ! -x $dir/root/$path ]]; then
  mkdir -p "$dir"
  rm -f "$dir"/*.deb
  (cd "$dir" && apt-get download "$package" >/dev/null 2>&1) || {
    apt-get update -qq >/dev/null 2>&1 || true
    (cd "$dir" && apt-get download "$package" >/dev/null)
  }
  dpkg-deb -x "$dir"/*.deb "$dir/root"
fi
[[ -x $dir/root/$path ]] || { echo "debian-bin.sh: $package has no $path" >&2; exit 1; }
echo "$dir/root/$path"
