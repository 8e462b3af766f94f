#!/usr/bin/env bash
# Build the kernel and userland and boot them in QEMU.
#
#   ./qemu-run.sh [--cpus N] [--nodes M] [--mem SIZE] [--accel kvm|tcg|auto] [--gdb]
#                 [--release|--debug] [--timeout SECONDS] [--append "KERNEL ARGS"] [--no-build]
#                 [--swap MIB] [--disk IMAGE | --rootfs IMAGE] [--disk-rw IMAGE] [--files DIR] [--no-demo]
#                 [--run PATH [ARGS...]]
#                 [-- EXTRA QEMU ARGS...]
#
# Defaults: 4 vCPUs, 2 NUMA nodes, 2 GiB, accel auto (KVM when it boots, else TCG), the
# release kernel and programs (`--debug`: the debug ones, with overflow checks and asserts).
# Without --run it runs the demo: the userland suite, then fault_bench (threads, 1/2/4
# workers); --no-demo runs only the suite.
# Memory and CPUs are split evenly over the nodes (SLIT: 10 local, 20 remote).
# `--run PATH ARGS` runs a static Linux-ABI program as the privileged first process and
# exits with its status (128+signal for a signal death). `--swap MIB` (default: twice
# the memory; 0 for none) makes a sparse swap image with mkswap, attaches it as the
# first virtio disk (/dev/vda) and has init turn it on at boot (/etc/swapdev), as the
# Linux anchor's --swap does. `--disk IMAGE` attaches a raw image as the next virtio
# disk, read-only; an ext4 one is mounted at /mnt. `--rootfs IMAGE` attaches an ext4
# image the same way and makes it the root (read-only; /proc, /sys, /dev, /tmp and
# /dev/shm are mounted in it): `--run PATH` then names a program inside the image, as
# with the anchor's --rootfs (init stays in the initramfs). `--disk-rw IMAGE` attaches a
# raw image writable (the block-layer test).
# `--files DIR` copies the host folder DIR into the initramfs with its paths kept
# (DIR/usr/bin/x becomes /usr/bin/x; repeatable); its symbolic links become copies of
# what they name, resolved inside DIR (the initramfs holds regular files only), so a
# Debian tree's /lib64/ld-linux-x86-64.so.2 and libfoo.so.1 links work. `--run` then
# takes a path inside the guest: `--files ROOT --run /usr/bin/prog` runs ROOT/usr/bin/prog
# as /usr/bin/prog. PEIOS_QEMU_EXTRA adds QEMU words (e.g. a gdb stub `-s` beside --run, whose
# arguments run to the end of the line).
# The kernel ends the VM through isa-debug-exit; the script's exit status is the guest's
# reported status (EXIT=n on the console), or 1 when the kernel failed or timed out.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cpus=4 nodes=2 mem=2G accel=auto gdb=0 profile=release timeout_s=600 append="" build=1
run=() extra=() disk="" disk_rw="" rootfs="" demo=1 swap_mib="" files=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --cpus) cpus=$2; shift 2;;
    --nodes) nodes=$2; shift 2;;
    --mem) mem=$2; shift 2;;
    --accel) accel=$2; shift 2;;
    --gdb) gdb=1; shift;;
    --release) profile=release; shift;;
    --debug) profile=debug; shift;;
    --timeout) timeout_s=$2; shift 2;;
    --append) append=$2; shift 2;;
    --no-build) build=0; shift;;
    --disk) disk=$2; shift 2;;
    --disk-rw) disk_rw=$2; shift 2;;
    --files) [[ -d $2 ]] || { echo "qemu-run.sh: --files $2: not a directory" >&2; exit 2; }
      files+=("$(cd "$2" && pwd)"); shift 2;;
    --rootfs) rootfs=$2; shift 2;;
    --swap) swap_mib=$2; shift 2;;
    --no-demo) demo=0; shift;;
    --run) shift; run=("$@"); break;;
    --) shift; extra=("$@"); break;;
    -h|--help) sed -n '2,36p' "$0"; exit 0;;
    *) echo "qemu-run.sh: unknown option $1" >&2; exit 2;;
  esac
done

if [[ -n $rootfs ]]; then
  [[ -n $disk ]] && { echo "qemu-run.sh: --disk and --rootfs: choose one" >&2; exit 2; }
  [[ ${#run[@]} -gt 0 ]] || { echo "qemu-run.sh: --rootfs needs --run PATH (a program in the image)" >&2; exit 2; }
fi

if ! command -v qemu-system-x86_64 >/dev/null; then
  echo "qemu-run.sh: installing qemu-system-x86" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-system-x86) >&2
fi

mem_mib=$(python3 -c "import sys; s=sys.argv[1].upper(); m={'G':1024,'M':1,'T':1<<20}; print(int(float(s[:-1])*m[s[-1]]) if s[-1] in m else int(s))" "$mem")
[[ -z $swap_mib ]] && swap_mib=$((2 * mem_mib))
if ! [[ $swap_mib =~ ^[0-9]+$ ]]; then echo "qemu-run.sh: --swap takes MiB" >&2; exit 2; fi
if (( nodes < 1 || cpus < nodes || mem_mib % nodes != 0 )); then
  echo "qemu-run.sh: need cpus >= nodes >= 1 and memory divisible by nodes" >&2; exit 2
fi

kernel=${CARGO_TARGET_DIR:-$here/target}/x86_64-unknown-none/$profile/kernel
if (( build )); then
  kernel_flags=()
  [[ $profile == release ]] && kernel_flags+=(--release)
  kernel=$("$here/tools/build-kernel.sh" "${kernel_flags[@]}")
  userland_flags=()
  [[ $profile == release ]] && userland_flags+=(--release)
  if [[ -x $here/userland/build.sh ]]; then "$here/userland/build.sh" "${userland_flags[@]}" >&2; fi
fi

# The demo (no --run): the suite, then the multi-threaded fault benchmark (init --demo,
# run as the program init starts). `--no-demo` boots into the plain suite (the tests do).
if [[ ${#run[@]} -eq 0 && $demo -eq 1 && -f $here/userland/target/bin/init ]]; then
  run=("$here/userland/target/bin/init" --demo)
fi

work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
# The swap disk: sparse, formatted by mkswap on the host, the first virtio disk.
drives=()
if (( swap_mib > 0 )); then
  command -v mkswap >/dev/null || PATH=$PATH:/usr/sbin:/sbin
  truncate -s "${swap_mib}M" "$work/swap.img"
  mkswap -q "$work/swap.img" >/dev/null
  drives+=(-drive "file=$work/swap.img,format=raw,if=virtio,cache=unsafe")
fi
[[ -n $disk ]] && drives+=(-drive "file=$disk,if=virtio,format=raw,readonly=on")
[[ -n $disk_rw ]] && drives+=(-drive "file=$disk_rw,if=virtio,format=raw")
if [[ -n $rootfs ]]; then
  drives+=(-drive "file=$rootfs,if=virtio,format=raw,readonly=on")
  letters=(a b c d e f g h)
  append="${append:+$append }root=vd${letters[$(( swap_mib > 0 ? 1 : 0 ))]}"
fi

initrd_args=()
if [[ -f $here/userland/target/initramfs.cpio || ${#run[@]} -gt 0 || ${#files[@]} -gt 0 ]]; then
  mkdir -p "$work/root/bin"
  if [[ -f $here/userland/target/initramfs.cpio ]]; then
    (cd "$work/root" && cpio -id --quiet < "$here/userland/target/initramfs.cpio")
  fi
  for dir in "${files[@]}"; do
    cp -a "$dir/." "$work/root/"
    # Each link becomes a copy of its target, resolved with DIR as the root.
    python3 - "$work/root" <<'PY'
import os, shutil, sys
root = sys.argv[1]
def resolve(path):
    for _ in range(40):
        if not os.path.islink(path):
            return path
        target = os.readlink(path)
        base = root if target.startswith("/") else os.path.dirname(path)
        path = os.path.normpath(os.path.join(base, target.lstrip("/")))
        if not (path + "/").startswith(root + "/"):
            return None
    return None
links = [os.path.join(d, n) for d, subdirs, names in os.walk(root) for n in names + subdirs
         if os.path.islink(os.path.join(d, n))]
for link in links:
    real = resolve(link)
    os.unlink(link)
    if real is None or not os.path.exists(real):
        continue
    if os.path.isdir(real):
        shutil.copytree(real, link, symlinks=False)
    else:
        shutil.copy2(real, link)
PY
  done
  if [[ ${#run[@]} -gt 0 && ( -n $rootfs || ( ${#files[@]} -gt 0 && ${run[0]} == /* && -f $work/root${run[0]} ) ) ]]; then
    # The program is in the root image, or in a --files tree (--files ROOT --run
    # /usr/bin/prog): it runs from there, and only its argv goes in the initramfs.
    mkdir -p "$work/root/etc"
    printf '%s\0' "${run[@]}" > "$work/root/etc/run.args"
  elif [[ ${#run[@]} -gt 0 ]]; then
    # The program keeps its name (argv[0] = /bin/<basename>, so a multi-call binary
    # finds itself); its argv goes in a file, not on the short kernel command line.
    name=$(basename "${run[0]}")
    cp "${run[0]}" "$work/root/bin/$name"
    mkdir -p "$work/root/etc"
    printf '%s\0' "/bin/$name" "${run[@]:1}" > "$work/root/etc/run.args"
  fi
  if (( swap_mib > 0 )); then
    mkdir -p "$work/root/etc"
    echo /dev/vda > "$work/root/etc/swapdev"
  fi
  (cd "$work/root" && find . | cpio -o -H newc --quiet > "$work/initrd")
  initrd_args=(-initrd "$work/initrd")
fi

# The kernel keeps 2047 bytes of command line (Linux x86's COMMAND_LINE_SIZE); QEMU
# places a longer one over the PVH start info. Program arguments go in the initramfs.
if (( ${#append} > 2047 )); then
  echo "qemu-run.sh: --append is ${#append} bytes; the kernel command line holds 2047" >&2; exit 2
fi

numa=()
per=$((mem_mib / nodes)) cpn=$((cpus / nodes))
for ((i = 0; i < nodes; i++)); do
  first=$((i * cpn)) last=$((i == nodes - 1 ? cpus - 1 : i * cpn + cpn - 1))
  numa+=(-object "memory-backend-ram,id=m$i,size=${per}M" -numa "node,nodeid=$i,memdev=m$i,cpus=$first-$last")
done
if (( nodes > 1 )); then
  for ((i = 0; i < nodes; i++)); do for ((j = 0; j < nodes; j++)); do
    (( i == j )) && continue
    numa+=(-numa "dist,src=$i,dst=$j,val=20")
  done; done
fi

kvm_ok() { [[ -r /dev/kvm && -w /dev/kvm ]]; }
qemu_args() { # $1 = accel
  local cpu=max
  [[ $1 == kvm ]] && cpu=host
  args=(-accel "$1" -cpu "$cpu" -smp "$cpus" -m "${mem_mib}M" "${numa[@]}"
    -kernel "$kernel" "${initrd_args[@]}" -append "$append"
    -nographic -no-reboot -monitor none -serial stdio
    -device isa-debug-exit,iobase=0xf4,iosize=0x04)
  args+=("${drives[@]}")
  (( gdb )) && args+=(-s -S)
  args+=("${extra[@]}")
  # PEIOS_QEMU_EXTRA: more QEMU words for runs whose tail is taken by --run (a gdb stub
  # or a monitor socket on a long run: "-s -monitor unix:/tmp/mon.sock,server,nowait").
  if [[ -n ${PEIOS_QEMU_EXTRA:-} ]]; then
    local more; read -r -a more <<< "$PEIOS_QEMU_EXTRA"; args+=("${more[@]}")
  fi
}
run_qemu() { # $1 = accel; output goes to the console and to $log
  qemu_args "$1"
  set +e
  timeout "$timeout_s" qemu-system-x86_64 "${args[@]}" | stdbuf -oL tr -d '\r' | tee "$log"
  local status=${PIPESTATUS[0]}
  set -e
  return "$status"
}
# A KVM that cannot run the guest may stop QEMU without exiting (this machine's PVM
# hypervisor reports "KVM internal error" and hangs) or make QEMU abort at start: the
# guest must finish booting within 15 s, and an internal error at any point, or QEMU
# ending before the guest booted, sends the run to TCG instead.
try_kvm() {
  qemu_args kvm
  : > "$log"
  timeout "$timeout_s" qemu-system-x86_64 "${args[@]}" > "$log.raw" 2>&1 &
  local pid=$! booted=0
  for ((i = 0; i < 150; i++)); do
    if grep -aq "boot complete" "$log.raw" 2>/dev/null; then booted=1; break; fi
    grep -aq "internal error" "$log.raw" 2>/dev/null && break
    # QEMU gone before the guest said it booted (it may abort setting up KVM, e.g.
    # "failed to set MSR"): not a KVM run; TCG runs the guest instead.
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  while (( booted )) && kill -0 "$pid" 2>/dev/null; do
    grep -aq "internal error" "$log.raw" 2>/dev/null && { booted=0; break; }
    sleep 0.2
  done
  if (( !booted )) || grep -aq "internal error" "$log.raw" 2>/dev/null; then
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    return 200
  fi
  set +e; wait "$pid"; local status=$?; set -e
  tr -d '\r' < "$log.raw" | tee "$log"
  return "$status"
}

log=$(mktemp); trap 'rm -f "$log" "$log.raw"; rm -rf "$work"' EXIT
status=0
case $accel in
  tcg) run_qemu tcg || status=$?;;
  kvm) run_qemu kvm || status=$?;;
  auto)
    status=200
    if kvm_ok && (( !gdb )); then try_kvm || status=$?; fi
    if (( status == 200 )); then
      kvm_ok && echo "qemu-run.sh: KVM did not bring the guest up; using TCG" >&2
      status=0; run_qemu tcg || status=$?
    fi;;
  *) echo "qemu-run.sh: --accel must be kvm, tcg or auto" >&2; exit 2;;
esac

# isa-debug-exit: 33 = the kernel shut down cleanly, 35 = failure/panic, 124 = timeout.
guest_exit=$(grep -a '^EXIT=' "$log" | tail -n1 | cut -d= -f2 || true)
case $status in
  33) exit "${guest_exit:-0}";;
  124) echo "qemu-run.sh: guest timed out after ${timeout_s}s" >&2; exit 1;;
  35) echo "qemu-run.sh: guest reported failure" >&2; exit "${guest_exit:-1}";;
  *) echo "qemu-run.sh: QEMU exited with status $status" >&2; exit 1;;
esac
