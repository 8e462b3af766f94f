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
        "block" => drop(sched.spawn(block_round_trip())),
        // The topology report, then each CPU's local interrupt pins.
        "boot" => drop(sched.spawn(report_interrupt_pins())),
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

/// The block device seam over virtio-blk: the host's signature in sector 0 is read,
/// 64 pages are written with all requests in flight together and read back identical,
/// a request past the end is refused, and completions came by interrupt.
async fn block_round_trip() {
    use futures_util::future::join_all;
    use mm::block::BlockError;
    let Some(dev) = crate::virtio_blk::device() else {
        panic!("block: no virtio block device");
    };
    let first = dev
        .read(0, alloc::vec![0; 512].into_boxed_slice())
        .await
        .expect("block: read sector 0");
    let signature = core::str::from_utf8(&first[..16]).unwrap_or("<not text>");
    kprintln!("block: sector 0 holds {signature:?}");
    const PAGES: u64 = 64;
    let pattern = |page: u64| -> alloc::boxed::Box<[u8]> {
        (0..4096u64)
            .map(|i| (i.wrapping_mul(31) ^ page.wrapping_mul(7)) as u8)
            .collect()
    };
    let writes = (0..PAGES).map(|p| dev.write(8 + p * 8, pattern(p)));
    for r in join_all(writes).await {
        r.expect("block: write");
    }
    let reads = (0..PAGES).map(|p| dev.read(8 + p * 8, alloc::vec![0; 4096].into_boxed_slice()));
    let back = join_all(reads).await;
    for (p, r) in back.into_iter().enumerate() {
        let data = r.expect("block: read back");
        assert!(*data == *pattern(p as u64), "block: page {p} differs");
    }
    let past = dev
        .read(
            dev.capacity_sectors(),
            alloc::vec![0; 512].into_boxed_slice(),
        )
        .await;
    assert_eq!(past.err(), Some(BlockError::OutOfRange));
    let irq = crate::virtio_blk::irq().unwrap_or(0);
    let interrupts = crate::interrupts::IRQ_COUNTS
        .get(usize::from(irq))
        .map_or(0, |c| c.load(core::sync::atomic::Ordering::Relaxed));
    kprintln!("block: {PAGES} pages written and read back identical; {interrupts} interrupts on IRQ {irq}");
    exit_qemu(ExitCode::Success);
}

/// Each CPU reports its LINT0/LINT1 pins (LINT0 masked everywhere, LINT1 the NMI pin on
/// the boot CPU only), then the VM ends.
async fn report_interrupt_pins() {
    let cpus = smp::online_cpus();
    let reported = alloc::sync::Arc::new(core::sync::atomic::AtomicU32::new(0));
    for cpu in 0..cpus {
        let reported = reported.clone();
        drop(scheduler().spawn_on(CpuId(cpu), async move {
            let (lint0, lint1) = crate::arch::apic::local_interrupt_pins();
            kprintln!("CPU {cpu} pins: LINT0 {lint0}, LINT1 {lint1}");
            reported.fetch_add(1, core::sync::atomic::Ordering::SeqCst);
        }));
    }
    while reported.load(core::sync::atomic::Ordering::SeqCst) < cpus {
        scheduler().sleep(1_000_000).await;
    }
    exit_qemu(ExitCode::Success);
}
