//! Stress: many tasks, pinned and floating, on 4 CPUs, passing tokens to
//! random peers (fixed-seed LCG), with yields and short sleeps mixed in.

use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::vec::Vec;

use super::util::{wait, Chan, Lcg};
use crate::host::HostMachine;
use crate::{yield_now, CpuId};

enum Msg {
    Token { hops_left: u32, rng: u64 },
    Stop,
}

#[test]
fn random_token_passing_all_tasks_complete() {
    const CPUS: u64 = 4;
    const TASKS: usize = 48;
    const TOKENS: u64 = 48;
    const HOPS: u32 = 150;
    let m = HostMachine::boot(CPUS as usize);
    let sched = m.sched();
    let inboxes: Arc<Vec<Arc<Chan<Msg>>>> = Arc::new((0..TASKS).map(|_| Chan::new()).collect());
    let hops = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(AtomicU64::new(0));
    let mut placement = Lcg::new(0x5eed);
    let handles: Vec<_> = (0..TASKS)
        .map(|me| {
            let (inboxes, hops, finished) = (inboxes.clone(), hops.clone(), finished.clone());
            let task = async move {
                let mut received = 0u64;
                loop {
                    match inboxes[me].recv().await {
                        Msg::Stop => return received,
                        Msg::Token { hops_left, rng } => {
                            received += 1;
                            hops.fetch_add(1, Ordering::Relaxed);
                            let mut rng = Lcg::new(rng);
                            match rng.below(32) {
                                0 => sched.sleep(20_000).await,
                                1..=4 => yield_now().await,
                                _ => {}
                            }
                            if hops_left == 0 {
                                if finished.fetch_add(1, Ordering::SeqCst) + 1 == TOKENS {
                                    for inbox in inboxes.iter() {
                                        inbox.send(Msg::Stop);
                                    }
                                }
                            } else {
                                let next = rng.below(TASKS as u64) as usize;
                                let seed = rng.next();
                                inboxes[next].send(Msg::Token {
                                    hops_left: hops_left - 1,
                                    rng: seed,
                                });
                            }
                        }
                    }
                }
            };
            if placement.below(2) == 0 {
                sched.spawn_on(CpuId(placement.below(CPUS) as u32), task)
            } else {
                sched.spawn(task)
            }
        })
        .collect();
    let mut seeds = Lcg::new(42);
    for t in 0..TOKENS {
        inboxes[(t as usize) % TASKS].send(Msg::Token {
            hops_left: HOPS,
            rng: seeds.next(),
        });
    }
    let mut received = 0;
    for h in handles {
        received += wait(&m, h);
    }
    let expected = TOKENS * (u64::from(HOPS) + 1);
    assert_eq!(received, expected);
    assert_eq!(hops.load(Ordering::Relaxed), expected);
    m.shutdown();
}
