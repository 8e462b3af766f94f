//! Work stealing: floating work spreads over idle CPUs, pinned work never moves.

use core::time::Duration;
use std::collections::BTreeSet;
use std::vec::Vec;

use super::util::{busy_for, wait};
use crate::host::HostMachine;
use crate::CpuId;

#[test]
fn floating_cpu_bound_tasks_spread_over_cpus() {
    const CPUS: usize = 4;
    let m = HostMachine::boot(CPUS);
    let sched = m.sched();
    let ran_on = wait(
        &m,
        sched.spawn_on(CpuId(0), async move {
            let handles: Vec<_> = (0..CPUS)
                .map(|_| {
                    sched.spawn(async move {
                        busy_for(Duration::from_millis(40));
                        sched.current_cpu()
                    })
                })
                .collect();
            let mut ran_on = Vec::new();
            for h in handles {
                ran_on.push(h.await);
            }
            ran_on
        }),
    );
    let distinct: BTreeSet<CpuId> = ran_on.iter().copied().collect();
    assert!(
        distinct.len() > 1,
        "all floating tasks ran on {distinct:?}: nothing was stolen"
    );
    let steals: u64 = (0..CPUS).map(|c| sched.stats(CpuId(c as u32)).steals).sum();
    assert!(steals >= 1);
    m.shutdown();
}

#[test]
fn pinned_tasks_are_never_stolen() {
    let m = HostMachine::boot(3);
    let sched = m.sched();
    let handles: Vec<_> = (0..6)
        .map(|_| {
            sched.spawn_on(CpuId(1), async move {
                busy_for(Duration::from_millis(5));
                sched.current_cpu()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(wait(&m, h), CpuId(1));
    }
    assert_eq!(
        sched.stats(CpuId(0)).steals + sched.stats(CpuId(2)).steals,
        0
    );
    m.shutdown();
}

/// A CPU stuck in one long poll (a system call that never awaits) holds back
/// neither the floating tasks queued behind it nor its sleepers: a busy CPU
/// fires its due timers and runs its floating work.
#[test]
fn a_busy_cpu_relieves_a_cpu_stalled_in_one_long_poll() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    const STALL: Duration = Duration::from_millis(400);
    let m = HostMachine::boot(2);
    let sched = m.sched();
    let stop = Arc::new(AtomicBool::new(false));
    // CPU 0 always has work of its own, so it never steals as an idle CPU.
    let spinning = stop.clone();
    let spinner = sched.spawn_on(CpuId(0), async move {
        while !spinning.load(Ordering::SeqCst) {
            crate::yield_now().await;
        }
    });
    let stalled = sched.spawn_on(CpuId(1), async move {
        // A sleeper whose timer is CPU 1's, and a floating task queued on CPU 1.
        let sleeper = sched.spawn(async move {
            sched.sleep(5_000_000).await;
            (sched.current_cpu(), Instant::now())
        });
        crate::yield_now().await;
        let queued = sched.spawn(async move { (sched.current_cpu(), Instant::now()) });
        let started = Instant::now();
        busy_for(STALL);
        (started + STALL, sleeper, queued)
    });
    let (stall_end, sleeper, queued) = wait(&m, stalled);
    let (slept_on, slept_at) = wait(&m, sleeper);
    let (queued_on, queued_at) = wait(&m, queued);
    stop.store(true, Ordering::SeqCst);
    wait(&m, spinner);
    assert_eq!(queued_on, CpuId(0), "the queued task waited for the stall");
    assert!(
        queued_at < stall_end,
        "the queued task ran only after the stall"
    );
    assert_eq!(slept_on, CpuId(0), "the sleeper waited for the stall");
    assert!(
        slept_at < stall_end,
        "the sleeper woke only after the stall"
    );
    assert!(sched.stats(CpuId(0)).stall_steals >= 2);
    m.shutdown();
}
