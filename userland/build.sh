#!/usr/bin/env bash
# Builds every userland program into target/bin/ (one flat directory of static
# ELF files) and packs target/initramfs.cpio (cpio newc) holding /init and
# /bin/<every program>. Usage: userland/build.sh [--release]
# Idempotent: only what changed is rebuilt, and the cpio is rewritten only when a
# program changed.
set -euo pipefail
cd "$(dirname "$0")"
# The programs land in this workspace's own target/ whatever the kernel's build uses.
unset CARGO_TARGET_DIR

profile=debug cargo_flags=()
for arg in "$@"; do
  case $arg in
    --release) profile=release cargo_flags+=(--release) ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

apt_install() {
  if [[ -z ${apt_updated:-} ]]; then apt-get update -qq >&2 || true; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}
command -v musl-gcc >/dev/null || apt_install musl-tools
command -v cpio >/dev/null || apt_install cpio
rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-none || rustup target add x86_64-unknown-none >&2
rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl || rustup target add x86_64-unknown-linux-musl >&2

bin=target/bin
mkdir -p "$bin" target/c

# Rust programs (flags for static non-PIE ET_EXEC at 0x400000 in .cargo/config.toml).
cargo build -q "${cargo_flags[@]}"
# One program per bins/src/bin/NAME.rs, or per bins/src/bin/NAME/main.rs (with modules).
for src in bins/src/bin/*.rs bins/src/bin/*/main.rs; do
  name=$(basename "$src" .rs)
  [[ $name == main ]] && name=$(basename "$(dirname "$src")")
  out=target/x86_64-unknown-none/$profile/$name
  cmp -s "$out" "$bin/$name" || cp "$out" "$bin/$name"
done

# C programs: musl -static (ET_EXEC) and -static-pie (ET_DYN, self-relocating).
# musl-gcc's specs always link Scrt1.o with a dynamic-linker request; static-pie
# needs rcrt1.o and --no-dynamic-linker, so derive a specs file for it.
specs=$(sed -n 's/.*-specs "\(.*\)".*/\1/p' "$(command -v musl-gcc)")
realgcc=$(sed -n 's/.*exec "${REALGCC:-\([^}]*\)}.*/\1/p' "$(command -v musl-gcc)")
pie_specs=target/c/musl-static-pie.specs
if [[ ! -s $pie_specs || $specs -nt $pie_specs ]]; then
  sed -e 's|Scrt1\.o|rcrt1.o|' -e 's|-dynamic-linker [^ ]*|-static -pie --no-dynamic-linker -z text|' "$specs" > "$pie_specs"
fi
cc_if_newer() { # out src cmd... (rebuilt when the source, a shared header or this script is newer)
  local out=$1 src=$2; shift 2
  if [[ ! -e $out || $src -nt $out || $0 -nt $out || -n $(find c -name '*.h' -newer "$out") ]]; then
    "$@" -o "$out.tmp" "$src" && mv "$out.tmp" "$out"
  fi
}
cc_if_newer "$bin/hello_c" c/hello.c musl-gcc -static -O2 -Wall
cc_if_newer "$bin/segv" c/segv.c musl-gcc -static -O2 -Wall
cc_if_newer "$bin/vdso" c/vdso.c musl-gcc -static -O2 -Wall
cc_if_newer "$bin/prctl" c/prctl.c musl-gcc -static -O2 -Wall
cc_if_newer "$bin/aslr" c/aslr.c musl-gcc -static -O2 -Wall
cc_if_newer "$bin/populate" c/populate.c musl-gcc -static -O2 -Wall -pthread
cc_if_newer "$bin/pidfd" c/pidfd.c musl-gcc -static -O2 -Wall
cc_if_newer "$bin/shm" c/shm.c musl-gcc -static -O2 -Wall
cc_if_newer "$bin/memfd" c/memfd.c musl-gcc -static -O2 -Wall
cc_if_newer "$bin/shmfalloc" c/shmfalloc.c musl-gcc -static -O2 -Wall
cc_if_newer "$bin/hugepriv" c/hugepriv.c musl-gcc -static -O2 -Wall
cc_if_newer "$bin/hugetrunc" c/hugetrunc.c musl-gcc -static -O2 -Wall
cc_if_newer "$bin/uffd_fork" c/uffd_fork.c musl-gcc -static -O2 -Wall
cc_if_newer "$bin/uffd_kwrite" c/uffd_kwrite.c musl-gcc -static -O2 -Wall
cc_if_newer "$bin/timers" c/timers.c musl-gcc -static -O2 -Wall
cc_if_newer "$bin/sharedfile" c/sharedfile.c musl-gcc -static -O2 -Wall
# stdhello: a program on the full Rust standard library (musl, static-PIE), its own crate.
cargo build -q --release --manifest-path std/Cargo.toml --target x86_64-unknown-linux-musl --target-dir target/std
cp -p target/std/x86_64-unknown-linux-musl/release/stdhello "$bin/stdhello"
cc_if_newer "$bin/hello_pie" c/hello.c "${REALGCC:-${realgcc:-gcc}}" -specs "$pie_specs" -static-pie -fPIE -O2 -Wall
# hello_dyn: dynamically linked against musl; its loader (musl's libc.so, which is also
# the dynamic linker) goes into the initramfs at the PT_INTERP path.
cc_if_newer "$bin/hello_dyn" c/hello.c musl-gcc -O2 -Wall
musl_loader=/lib/ld-musl-x86_64.so.1

# initramfs: /init plus /bin/<every program>; rewritten only when a program is newer.
cpio_out=target/initramfs.cpio
if [[ ! -s $cpio_out || $0 -nt $cpio_out || etc/registry.conf -nt $cpio_out || $musl_loader -nt $cpio_out ]] || [[ -n $(find "$bin" -newer "$cpio_out" -type f | head -1) ]]; then
  root=target/initramfs.root
  rm -rf "$root"; mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/proc" "$root/sys" "$root/dev"
  cp "$bin"/* "$root/bin/"
  # Debug info stays in target/bin (for addr2line); the guest gets lean copies.
  if command -v strip >/dev/null; then strip --strip-debug "$root"/bin/*; fi
  cp "$root/bin/init" "$root/init"
  mkdir -p "$root/lib" && cp -L "$musl_loader" "$root/lib/"
  # hugebss: a static ELF whose data segment has a 64 TiB p_memsz (its code would exit
  # with 42); hostile checks that execve refuses it at once with ENOMEM.
  python3 - "$root/bin/hugebss" <<'PY'
import struct, sys
f = bytearray(0x1000)
f[0:16] = b"\x7fELF\x02\x01\x01" + bytes(9)
struct.pack_into("<HHIQQQIHHHHHH", f, 16, 2, 62, 1, 0x400100, 64, 0, 0, 64, 56, 2, 0, 0, 0)
def ph(at, flags, off, va, filesz, memsz):
    struct.pack_into("<IIQQQQQQ", f, at, 1, flags, off, va, va, filesz, memsz, 0x1000)
ph(64, 5, 0, 0x400000, 0x1000, 0x1000)
ph(120, 6, 0x1000, 0x401000, 0, 64 << 40)
f[0x100:0x10c] = bytes([0xb8, 60, 0, 0, 0, 0xbf, 42, 0, 0, 0, 0x0f, 0x05])
open(sys.argv[1], "wb").write(f)
PY
  chmod +x "$root/bin/hugebss"
  cp etc/registry.conf "$root/etc/registry.conf"
  (cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) > "$cpio_out.tmp"
  mv "$cpio_out.tmp" "$cpio_out"
fi
echo "build.sh: $profile programs in $(pwd)/$bin: $(ls "$bin" | tr '\n' ' ')"
echo "build.sh: initramfs $(pwd)/$cpio_out ($(stat -c %s "$cpio_out") bytes)"
