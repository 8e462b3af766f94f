//! Cross-CPU spawning and waking: pinned tasks run where sent, no wake is lost.

use std::sync::Arc;
use std::vec::Vec;

use super::util::{wait, Chan};
use crate::host::HostMachine;
use crate::{yield_now, CpuId};

#[test]
fn every_cpu_spawns_on_every_cpu_and_tasks_run_where_sent() {
    const CPUS: u32 = 4;
    const PER_PAIR: usize = 150;
    let m = HostMachine::boot(CPUS as usize);
    let sched = m.sched();
    let spawners: Vec<_> = (0..CPUS)
        .map(|src| {
            sched.spawn_on(CpuId(src), async move {
                let mut handles = Vec::new();
                for k in 0..PER_PAIR {
                    for dst in 0..CPUS {
                        handles.push(sched.spawn_on(CpuId(dst), async move {
                            let before = sched.current_cpu();
                            yield_now().await; // a local wake: must come back here too
                            (CpuId(dst), before, sched.current_cpu(), k)
                        }));
                    }
                }
                let mut results = Vec::new();
                for h in handles {
                    results.push(h.await);
                }
                (CpuId(src), results)
            })
        })
        .collect();
    let mut total = 0;
    for s in spawners {
        let (src, results) = wait(&m, s);
        assert_eq!(results.len(), PER_PAIR * CPUS as usize);
        for (sent_to, before, after, _) in results {
            assert_eq!(before, sent_to, "spawned from {src}: ran on the wrong CPU");
            assert_eq!(
                after, sent_to,
                "spawned from {src}: re-polled on the wrong CPU"
            );
            total += 1;
        }
    }
    assert_eq!(total, (CPUS * CPUS) as usize * PER_PAIR);
    let wakes: u64 = (0..CPUS)
        .map(|c| {
            let s = sched.stats(CpuId(c));
            s.local_wakes + s.remote_wakes
        })
        .sum();
    assert!(wakes >= total as u64, "every yield is a wake");
    m.shutdown();
}

/// `rounds` round trips between a task on CPU `a` and one on CPU `b`.
pub(super) fn ping_pong(m: &HostMachine, a: CpuId, b: CpuId, rounds: u32) {
    let sched = m.sched();
    let (to_b, to_a) = (Chan::new(), Chan::new());
    let (rx, tx) = (to_b.clone(), to_a.clone());
    let pong = sched.spawn_on(b, async move {
        for _ in 0..rounds {
            let v: u32 = rx.recv().await;
            tx.send(v + 1);
        }
    });
    let (tx, rx) = (to_b, to_a);
    let ping = sched.spawn_on(a, async move {
        let mut v = 0;
        for _ in 0..rounds {
            tx.send(v);
            v = rx.recv().await;
        }
        v
    });
    assert_eq!(wait(m, ping), rounds, "every round trip completed");
    wait(m, pong);
}

#[test]
fn ping_pong_across_cpus_loses_no_wakeup() {
    let m = HostMachine::boot(2);
    ping_pong(&m, CpuId(0), CpuId(1), 10_000);
    let sched = m.sched();
    let (s0, s1) = (sched.stats(CpuId(0)), sched.stats(CpuId(1)));
    // Every wake crossed CPUs (a reply that arrives before the receiver
    // waits needs no wake at all, so there may be fewer than 10k).
    assert_eq!(s0.local_wakes + s1.local_wakes, 0);
    assert!(s0.remote_wakes > 0 && s1.remote_wakes > 0);
    // A kick goes only to a CPU that announced idle, at most once per idle.
    assert!(s0.kicks <= s0.remote_wakes + 1 && s1.kicks <= s1.remote_wakes + 1);
    m.shutdown();
}

#[test]
fn spawn_on_from_foreign_thread_kicks_an_idle_cpu() {
    let m = HostMachine::boot(3);
    let sched = m.sched();
    // Let the CPUs go idle first: each has parked once it has called idle (with no
    // timer armed it stays parked until kicked). Waited for, not slept for, so a
    // loaded host that starts the CPU threads late cannot fail the test.
    let platform = sched.platform();
    while (0..3).any(|cpu| platform.idle_calls(CpuId(cpu)) == 0) {
        std::thread::sleep(core::time::Duration::from_millis(1));
    }
    let chan = Chan::new();
    for cpu in 0..3 {
        let tx = chan.clone();
        drop(sched.spawn_on(CpuId(cpu), async move { tx.send(sched.current_cpu()) }));
    }
    let rx = Arc::clone(&chan);
    let mut seen: Vec<CpuId> = wait(&m, async move {
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(rx.recv().await);
        }
        seen
    });
    seen.sort();
    assert_eq!(seen, [CpuId(0), CpuId(1), CpuId(2)]);
    for cpu in 0..3 {
        assert!(
            m.sched().platform().kicks(CpuId(cpu)) >= 1,
            "cpu{cpu} was parked: it needed a kick"
        );
    }
    m.shutdown();
}
