//! Guest tests run by the kernel itself when the command line says `test=NAME`. Each ends
//! the VM: success through isa-debug-exit, failure by panicking (which reports and fails).

use crate::{arch::percpu, executor::scheduler, kprintln, smp, time};
use alloc::vec::Vec;
use drivers::debug_exit::{exit_qemu, ExitCode};
use sched::CpuId;

/// Starts the named test as a task; returns false for an unknown name.
pub fn spawn(name: &str) -> bool {
    let sched = scheduler();
    match name {
        "kernel_fault" => {
            let last = CpuId(smp::online_cpus() - 1);
            drop(sched.spawn_on(last, async { kernel_fault() }));
        }
        "executor" => drop(sched.spawn(executor_all_pairs())),
        "frames" => drop(sched.spawn(crate::ktest_frames::run())),
        // Boot only: the topology report is the test.
        "boot" => exit_qemu(ExitCode::Success),
        _ => return false,
    }
    true
}

fn kernel_fault() {
    kprintln!(
        "kernel_fault: writing to an unmapped kernel-mode address on cpu {}",
        percpu::current_cpu().0
    );
    let target = 0x0000_7bad_0000_0000u64 as *mut u64;
    // SAFETY: deliberately invalid: this test checks the exception report of a kernel fault.
    unsafe { target.write_volatile(1) };
    panic!("the write to an unmapped address did not fault");
}

/// Rounds per ordered CPU pair.
const ROUNDS_PER_PAIR: u32 = 200;

/// Every CPU spawns tasks on every other CPU and awaits them: each hop is a cross-CPU
/// spawn (inbox push + kick) and a cross-CPU wake of the joiner. Each task reports the CPU
/// it ran on, which must be the one it was sent to.
async fn executor_all_pairs() {
    let sched = scheduler();
    let cpus = smp::online_cpus();
    let start = time::now_ns();
    let mut drivers = Vec::new();
    for from in 0..cpus {
        drivers.push(sched.spawn_on(CpuId(from), async move {
            let sched = scheduler();
            assert_eq!(
                percpu::current_cpu(),
                CpuId(from),
                "driver task ran on the wrong CPU"
            );
            let mut hops = 0u32;
            for round in 0..ROUNDS_PER_PAIR {
                for to in (0..cpus).filter(|&to| to != from) {
                    let ran_on = sched
                        .spawn_on(CpuId(to), async { percpu::current_cpu() })
                        .await;
                    assert_eq!(
                        ran_on,
                        CpuId(to),
                        "task for cpu {to} ran on {ran_on} (round {round})"
                    );
                    assert_eq!(
                        percpu::current_cpu(),
                        CpuId(from),
                        "joiner resumed on the wrong CPU"
                    );
                    hops += 1;
                }
            }
            hops
        }));
    }
    let mut total = 0;
    for d in drivers {
        total += d.await;
    }
    let elapsed_ms = (time::now_ns() - start) / 1_000_000;
    assert_eq!(total, cpus * cpus.saturating_sub(1) * ROUNDS_PER_PAIR);
    kprintln!("executor: {total} cross-CPU spawns and {total} cross-CPU wakes over {} pairs in {elapsed_ms} ms", cpus * cpus.saturating_sub(1));

    // Timers: every CPU sleeps 20 ms and must not wake early.
    let mut sleepers = Vec::new();
    for cpu in 0..cpus {
        sleepers.push(sched.spawn_on(CpuId(cpu), async move {
            let t0 = time::now_ns();
            scheduler().sleep(20_000_000).await;
            (percpu::current_cpu(), time::now_ns() - t0)
        }));
    }
    for (cpu, s) in sleepers.into_iter().enumerate() {
        let (ran_on, slept) = s.await;
        assert_eq!(ran_on, CpuId(cpu as u32));
        assert!(
            slept >= 20_000_000,
            "cpu {cpu} woke after {slept} ns of a 20 ms sleep"
        );
    }
    for cpu in 0..cpus {
        let s = sched.stats(CpuId(cpu));
        kprintln!("executor stats cpu {cpu}: {s:?}");
    }
    kprintln!("executor test passed");
    exit_qemu(ExitCode::Success);
}
