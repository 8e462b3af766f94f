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
