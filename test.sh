#!/usr/bin/env bash
# Run every test: host unit and property tests (mm, sched) and the QEMU guest tests
# (tests/), which build the kernel and userland and boot them under TCG.
# Installs what a fresh Debian machine lacks. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v musl-gcc >/dev/null || need+=(musl-tools)
command -v cpio >/dev/null || need+=(cpio)
command -v mkfs.ext4 >/dev/null || [[ -x /usr/sbin/mkfs.ext4 || -x /sbin/mkfs.ext4 ]] || need+=(e2fsprogs)
if (( ${#need[@]} )); then
  echo "test.sh: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
if command -v rustup >/dev/null; then
  rustup show active-toolchain >/dev/null 2>&1 || rustup toolchain install
  for target in x86_64-unknown-none x86_64-unknown-linux-musl; do
    rustup target list --installed | grep -qx "$target" || rustup target add "$target"
  done
fi

start=$(date +%s)
if (( $# == 0 )); then
  # The guest tests' kernels (the harness's target/guest) and programs build beside the
  # host tests' compile: two cargo processes in separate target dirs keep both cores busy
  # through each other's serial stretches (one large crate, linking). The harness's own
  # build calls then find everything built.
  log=target/guest-prebuild.log
  mkdir -p target
  # The Debian packages the guest tests run are fetched beside the builds (mostly
  # waiting on the network; a failure is left to the tests, which tell "no network"
  # from "broken").
  ( tools/debian-bin.sh busybox-static bin/busybox || true
    tools/stress-ng-rootfs.sh || true ) >target/debian-fetch.log 2>&1 &
  fetch=$!
  # The kernel (one codegen unit: mostly one core) and the programs build side by
  # side, and beside the host tests' compile.
  ( export CARGO_TARGET_DIR=$PWD/target/guest
    tools/build-kernel.sh --release ) >"$log" 2>&1 &
  kernel=$!
  userland/build.sh >target/userland-build.log 2>&1 &
  programs=$!
  cargo test --no-run -q --profile hosttest
  if ! wait "$kernel"; then
    cat "$log" >&2
    echo "test.sh: the guest kernel's build failed" >&2
    exit 1
  fi
  if ! wait "$programs"; then
    cat target/userland-build.log >&2
    echo "test.sh: the userland build failed" >&2
    exit 1
  fi
  wait "$fetch" || true
  echo "test.sh: builds took $(( $(date +%s) - start )) s"
fi
if (( $# == 0 )); then
  cargo test --profile hosttest
else
  cargo test "$@"
fi
echo "test.sh: whole suite took $(( $(date +%s) - start )) s"
