#!/usr/bin/env bash
# Side-by-side figures: the same static benchmark binaries on our kernel and on Linux 6.12,
# same QEMU machine (TCG, CPUs, nodes, memory), interleaved in one run, printed as ratios.
#
#   bench/side-by-side.sh [--cpus N] [--nodes M] [--mem MiB] [--rounds R] [--seconds S]
#
# Linux is booted with the linux-anchor tool (LINUX_ANCHOR, default
# ../shared/tools/linux-anchor/run-linux.sh). Prints `name.peios=x name.linux=y
# name.ratio=x/y` per figure (median over the rounds), and boot-to-exit wall times.
# Figures: fault_bench (threads, 1 and 2 workers), futex ping-pong, getppid, cliff_bench
# (fork of 256 MiB, lone sched_yield, faults beside an mprotect loop) and timerstress's
# p99 lateness of a 1 ms sleep beside one spinner per CPU (lower is better).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cpus=2 nodes=2 mem=2048 rounds=3 seconds=3
while [[ $# -gt 0 ]]; do
  case $1 in
    --cpus) cpus=$2; shift 2;; --nodes) nodes=$2; shift 2;; --mem) mem=$2; shift 2;;
    --rounds) rounds=$2; shift 2;; --seconds) seconds=$2; shift 2;;
    *) echo "side-by-side.sh: unknown option $1" >&2; exit 2;;
  esac
done
anchor=${LINUX_ANCHOR:-$here/../shared/tools/linux-anchor/run-linux.sh}
[[ -x $anchor ]] || { echo "side-by-side.sh: no Linux anchor at $anchor" >&2; exit 2; }

"$here/tools/build-kernel.sh" --release >/dev/null
"$here/userland/build.sh" --release >/dev/null
bin=$here/userland/target/bin

peios() { "$here/qemu-run.sh" --no-build --release --accel tcg --cpus "$cpus" --nodes "$nodes" --mem "${mem}M" --timeout 300 --run "$@" 2>/dev/null; }
linux() { "$anchor" --cpus "$cpus" --nodes "$nodes" --mem "$mem" --accel tcg "$@" 2>/dev/null; }

declare -A figs
record() { # system name value
  figs["$1|$2"]+="$3 "
}
collect() { # system output
  local system=$1
  while IFS= read -r line; do
    line=${line#*Booting from ROM..} # the firmware's last words share the first line
    case $line in
      fault_bench.*workers=*faults_per_sec=*)
        local mode=${line#fault_bench.}; mode=${mode%%.*}
        local w=${line#*workers=}; w=${w%% *}
        local v=${line#*faults_per_sec=}; v=${v%% *}
        record "$system" "fault_bench.$mode.w$w.faults_per_sec" "$v";;
      futex_pingpong.round_trips_per_sec=*) record "$system" futex_pingpong.round_trips_per_sec "${line#*=}";;
      getppid.calls_per_sec=*) record "$system" getppid.calls_per_sec "${line#*=}";;
      cliff_bench.*=*)
        local name=${line%%=*} rest=${line#*=}
        record "$system" "$name" "${rest%% *}";;
      timerstress:\ spinners=*)
        local v=${line#*wake_late_p99_us=}
        record "$system" timerstress.wake_late_p99_us "${v%% *}";;
    esac
  done <<< "$2"
}
boot_time() { # system: seconds from QEMU start to power-off for boot_exit
  local start end
  start=$(date +%s.%N)
  if [[ $1 == peios ]]; then peios "$bin/boot_exit" >/dev/null || true; else linux "$bin/boot_exit" >/dev/null || true; fi
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}

for ((r = 1; r <= rounds; r++)); do
  for system in peios linux; do
    run=$system
    collect "$system" "$($run "$bin/fault_bench" --mode thread --workers 1,2 --seconds "$seconds")"
    collect "$system" "$($run "$bin/futex_pingpong")"
    collect "$system" "$($run "$bin/getppid_bench")"
    collect "$system" "$($run "$bin/cliff_bench" --seconds "$seconds")"
    collect "$system" "$($run "$bin/timerstress" --rounds 0)"
    record "$system" boot_to_exit_seconds "$(boot_time "$system")"
  done
done

median() { tr ' ' '\n' | { grep -v '^$' || true; } | sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]}'; }
echo "side-by-side: cpus=$cpus nodes=$nodes mem=${mem}MiB rounds=$rounds (TCG, medians)"
for name in fault_bench.thread.w1.faults_per_sec fault_bench.thread.w2.faults_per_sec \
            futex_pingpong.round_trips_per_sec getppid.calls_per_sec \
            cliff_bench.fork_256mb.forks_per_sec cliff_bench.yield.calls_per_sec \
            cliff_bench.mprotect_alone.faults_per_sec cliff_bench.mprotect_beside.faults_per_sec \
            timerstress.wake_late_p99_us boot_to_exit_seconds; do
  p=$(echo "${figs["peios|$name"]:-}" | median); l=$(echo "${figs["linux|$name"]:-}" | median)
  ratio=$( [[ -n $p && -n $l ]] && echo "scale=2; $p / $l" | bc || echo "n/a")
  echo "$name.peios=$p $name.linux=$l $name.ratio=$ratio"
done
