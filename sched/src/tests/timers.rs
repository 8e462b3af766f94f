//! Timers: deadline order per CPU, never early, idle CPUs park instead of spinning.

use core::future::{ready, Future};
use core::pin::pin;
use core::task::Poll;
use core::time::Duration;
use std::sync::{Arc, Mutex};
use std::vec::Vec;

use futures_util::future::{select, Either};

use super::util::wait;
use crate::host::HostMachine;
use crate::CpuId;

const MS: u64 = 1_000_000;

#[test]
fn sleeps_complete_in_deadline_order_per_cpu_and_never_early() {
    const CPUS: u32 = 3;
    let m = HostMachine::boot(CPUS as usize);
    let sched = m.sched();
    let base = sched.now_ns() + 30 * MS;
    // Spawned in scrambled order; each CPU gets its own deadlines.
    let slots = [3u64, 0, 4, 1, 2];
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for cpu in 0..CPUS {
        for &slot in &slots {
            let deadline = base + (slot * 4 + u64::from(cpu)) * MS;
            let log = log.clone();
            handles.push(sched.spawn_on(CpuId(cpu), async move {
                sched.sleep_until(deadline).await;
                let woke = sched.now_ns();
                log.lock()
                    .unwrap()
                    .push((sched.current_cpu(), deadline, woke));
            }));
        }
    }
    // A relative sleep, too.
    let t0 = sched.now_ns();
    handles.push(sched.spawn_on(CpuId(0), async move { sched.sleep(5 * MS).await }));
    for h in handles {
        wait(&m, h);
    }
    assert!(sched.now_ns() - t0 >= 5 * MS);
    let log = log.lock().unwrap();
    assert_eq!(log.len(), (CPUS as usize) * slots.len());
    for cpu in 0..CPUS {
        let mine: Vec<_> = log.iter().filter(|e| e.0 == CpuId(cpu)).collect();
        assert_eq!(mine.len(), slots.len(), "each sleeper woke on its own CPU");
        assert!(
            mine.windows(2).all(|w| w[0].1 < w[1].1),
            "cpu{cpu} woke out of deadline order: {mine:?}"
        );
        for &&(_, deadline, woke) in &mine {
            assert!(woke >= deadline, "woke {} ns early", deadline - woke);
        }
    }
    let fired: u64 = (0..CPUS).map(|c| sched.stats(CpuId(c)).timers_fired).sum();
    assert!(fired >= (CPUS as u64) * slots.len() as u64);
    m.shutdown();
}

#[test]
fn idle_cpus_park_instead_of_spinning() {
    let m = HostMachine::boot(2);
    let sched = m.sched();
    let platform = sched.platform();
    std::thread::sleep(Duration::from_millis(200));
    for cpu in [CpuId(0), CpuId(1)] {
        let idles = platform.idle_calls(cpu);
        assert!(
            idles <= 3,
            "{cpu} with no work called idle {idles} times in 200 ms"
        );
    }
    // Sleeping tasks: one park per deadline, not a spin until it.
    let before = platform.idle_calls(CpuId(1));
    wait(
        &m,
        sched.spawn_on(CpuId(1), async move {
            for _ in 0..4 {
                sched.sleep(20 * MS).await;
            }
        }),
    );
    let idles = platform.idle_calls(CpuId(1)) - before;
    assert!(idles <= 12, "4 sleeps of 20 ms took {idles} parks");
    assert!(
        platform.idle_calls(CpuId(0)) <= 4,
        "cpu0 had no work and must stay parked"
    );
    m.shutdown();
}

#[test]
fn dropped_sleep_leaves_no_timer_behind() {
    let m = HostMachine::boot(1);
    let sched = m.sched();
    let winner = wait(
        &m,
        sched.spawn_on(CpuId(0), async move {
            let long = pin!(sched.sleep(10_000 * MS));
            // Poll the long sleep once so it registers, then let a ready
            // future win the race: the sleep is dropped un-fired.
            let mut long = long;
            let registered =
                core::future::poll_fn(|cx| Poll::Ready(long.as_mut().poll(cx).is_pending())).await;
            assert!(registered);
            match select(long, pin!(ready(5))).await {
                Either::Left(_) => 0,
                Either::Right((v, _)) => v,
            }
        }),
    );
    assert_eq!(winner, 5);
    assert_eq!(sched.next_timer_ns(CpuId(0)), None);
    m.shutdown();
}

#[test]
fn a_due_timer_runs_ahead_of_a_task_that_keeps_yielding() {
    // A task that burns 3 ms per poll and yields (a user thread's slice) shares CPU 0
    // with a 1 ms sleeper. The sleeper must be polled right after the spinner's poll
    // in which its deadline passed, not after a batch of further slices.
    let m = HostMachine::boot(1);
    let sched = m.sched();
    let stop = Arc::new(core::sync::atomic::AtomicBool::new(false));
    let spins = Arc::new(core::sync::atomic::AtomicU64::new(0));
    let (stop2, spins2) = (stop.clone(), spins.clone());
    let spinner = sched.spawn_on(CpuId(0), async move {
        while !stop2.load(core::sync::atomic::Ordering::SeqCst) {
            let until = sched.now_ns() + 3 * MS;
            while sched.now_ns() < until {
                core::hint::spin_loop();
            }
            spins2.fetch_add(1, core::sync::atomic::Ordering::SeqCst);
            crate::yield_now().await;
        }
    });
    let (stop3, spins3) = (stop.clone(), spins.clone());
    let sleeper = sched.spawn_on(CpuId(0), async move {
        let mut late = Vec::new();
        for _ in 0..10 {
            let deadline = sched.now_ns() + MS;
            sched.sleep_until(deadline).await;
            let spins_before = spins3.load(core::sync::atomic::Ordering::SeqCst);
            late.push((sched.now_ns() - deadline, spins_before));
        }
        stop3.store(true, core::sync::atomic::Ordering::SeqCst);
        late
    });
    let late = wait(&m, sleeper);
    wait(&m, spinner);
    // Each sleep spans one spinner slice: the sleeper is polled right after the slice
    // in which its deadline passed. Counted in slices, not host time, so a host that
    // stalls the test's threads cannot fail it (nor hide a batch of extra slices).
    let mut slices_before = late[0].1;
    for &(_, spins_before) in &late[1..] {
        assert!(
            spins_before - slices_before <= 2,
            "the spinner ran {} slices during one 1 ms sleep: {late:?}",
            spins_before - slices_before
        );
        slices_before = spins_before;
    }
    let spins_total = spins.load(core::sync::atomic::Ordering::SeqCst);
    assert!(
        spins_total <= 2 * late.len() as u64 + 2,
        "the spinner ran {spins_total} slices during 10 short sleeps: {late:?}"
    );
}
