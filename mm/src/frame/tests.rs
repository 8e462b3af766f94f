//! Whole-allocator tests: the hot path, remote frees, placement and fallback,
//! watermark waits, zeroing, statistics, property tests and a threaded run.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::pin;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::task::{Context, Poll, Waker};
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::task::Wake;
use std::thread;
use std::time::Duration;

use proptest::prelude::*;
use sched::CpuId;

use super::*;

const MIB: u64 = 1 << 20;

/// Two nodes of `frames` frames each (node 0 at 16 MiB, node 1 at 64 GiB), CPUs
/// 0-1 on node 0 and 2-3 on node 1, watermarks set to `min` (low = high = min).
fn two_nodes(frames: u64, min: u64, config: FrameConfig) -> FrameAllocator {
    let ranges = [
        NodeRange {
            node: NodeId(0),
            phys_start: 16 * MIB,
            phys_end: 16 * MIB + frames * PAGE_SIZE,
        },
        NodeRange {
            node: NodeId(1),
            phys_start: 65536 * MIB,
            phys_end: 65536 * MIB + frames * PAGE_SIZE,
        },
    ];
    let cpus = [NodeId(0), NodeId(0), NodeId(1), NodeId(1)];
    let alloc =
        FrameAllocator::new(&ranges, DistanceMatrix::uniform(2).unwrap(), &cpus, config).unwrap();
    let w = Watermarks {
        min: PageCount(min),
        low: PageCount(min),
        high: PageCount(min),
    };
    alloc.set_node_watermarks(NodeId(0), w);
    alloc.set_node_watermarks(NodeId(1), w);
    alloc
}

fn o(n: u8) -> Order {
    Order::new(n).unwrap()
}

fn stats(alloc: &FrameAllocator, node: u32) -> NodeStats {
    alloc.node_stats(NodeId(node)).unwrap()
}

/// free + (allocated - freed) == present, on every node.
fn assert_conserved(alloc: &FrameAllocator) {
    for n in 0..alloc.nr_nodes() as u32 {
        let s = stats(alloc, n);
        assert_eq!(
            s.free().0 + s.pgalloc - s.pgfree,
            s.present.0,
            "node {n}: {s:?}"
        );
    }
}

struct ThreadWaker(thread::Thread);
impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs a future on this thread, parking between polls; returns the output and
/// the number of polls.
fn block_on<F: Future>(f: F) -> (F::Output, usize) {
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = pin!(f);
    let mut polls = 0;
    loop {
        polls += 1;
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return (v, polls);
        }
        thread::park();
    }
}

#[test]
fn hot_path_serves_local_frames_and_refills_in_batches() {
    let alloc = two_nodes(4096, 0, FrameConfig::default());
    let mut cpu2 = alloc.try_cpu(CpuId(2)).unwrap();
    let pfn = cpu2.alloc_frame().unwrap();
    assert_eq!(alloc.node_of(pfn), Some(NodeId(1)));
    assert_eq!(cpu2.cached(), PageCount(31));
    assert_eq!(stats(&alloc, 1).free_cached, PageCount(31));
    assert_eq!(stats(&alloc, 1).free_buddy, PageCount(4096 - 32));
    cpu2.free_frame(pfn).unwrap();
    assert_eq!(
        cpu2.alloc_frame(),
        Ok(pfn),
        "LIFO: the cache-hot frame comes back"
    );
    cpu2.free_frame(pfn).unwrap();
    assert_conserved(&alloc);
    let s = stats(&alloc, 1);
    assert_eq!(
        (s.pgalloc, s.pgfree, s.numa_hit, s.local_node),
        (2, 2, 2, 2)
    );
}

#[test]
fn cache_drains_a_batch_above_high() {
    let alloc = two_nodes(
        4096,
        0,
        FrameConfig {
            pcp_batch: 8,
            pcp_high: 16,
            ..FrameConfig::default()
        },
    );
    let mut cpu = alloc.try_cpu(CpuId(0)).unwrap();
    let frames: Vec<Pfn> = (0..40).map(|_| cpu.alloc_frame().unwrap()).collect();
    assert_eq!(cpu.cached(), PageCount(0));
    for (i, pfn) in frames.iter().enumerate() {
        cpu.free_frame(*pfn).unwrap();
        assert!(cpu.cached().0 <= 16, "after {i} frees");
    }
    assert_eq!(cpu.cached(), PageCount(16));
    assert_eq!(cpu.drain(), PageCount(16));
    drop(cpu);
    assert_eq!(alloc.free_blocks(NodeId(0)), [(Pfn(4096), o(12))]);
}

#[test]
fn handles_are_exclusive_per_cpu() {
    let alloc = two_nodes(64, 0, FrameConfig::default());
    let h = alloc.try_cpu(CpuId(1)).unwrap();
    assert!(alloc.try_cpu(CpuId(1)).is_none());
    assert!(alloc.try_cpu(CpuId(4)).is_none());
    assert_eq!(alloc.drain_all().busy_cpus, 1);
    drop(h);
    assert!(alloc.try_cpu(CpuId(1)).is_some());
}

#[test]
fn remote_frees_queue_to_the_owner_without_its_lock() {
    let alloc = two_nodes(4096, 0, FrameConfig::default());
    let mut cpu0 = alloc.try_cpu(CpuId(0)).unwrap();
    let mut cpu2 = alloc.try_cpu(CpuId(2)).unwrap();
    let frames: Vec<Pfn> = (0..10).map(|_| cpu0.alloc_frame().unwrap()).collect();
    let huge = cpu0.alloc(Order::HUGE_2M, Policy::Local).unwrap();
    for &pfn in &frames {
        cpu2.free_frame(pfn).unwrap();
    }
    cpu2.free(huge, Order::HUGE_2M).unwrap();
    let s = stats(&alloc, 0);
    assert_eq!(s.free_queued, PageCount(10 + 512));
    assert_eq!((s.remote_frees, s.remote_drained), (10 + 512, 0));
    assert_eq!(
        stats(&alloc, 1).free_cached,
        PageCount(0),
        "never cached on the wrong node"
    );
    assert_conserved(&alloc);
    // The owner drains on its next locked operation.
    cpu0.drain();
    let s = stats(&alloc, 0);
    assert_eq!((s.free_queued, s.remote_drained), (PageCount(0), 522));
    assert_eq!(alloc.free_blocks(NodeId(0)), [(Pfn(4096), o(12))]);
}

#[test]
fn exhausted_node_falls_back_by_distance() {
    // Three nodes in a line: 0 - 1 - 2; node 0's fallback is 1 then 2.
    #[rustfmt::skip]
    let d = DistanceMatrix::new(3, vec![10, 15, 30, 15, 10, 15, 30, 15, 10]).unwrap();
    let ranges: Vec<NodeRange> = (0..3)
        .map(|n| NodeRange {
            node: NodeId(n),
            phys_start: (n as u64 + 1) << 30,
            phys_end: ((n as u64 + 1) << 30) + 64 * PAGE_SIZE,
        })
        .collect();
    let config = FrameConfig {
        min_free_kbytes: Some(0),
        ..FrameConfig::default()
    };
    let alloc = FrameAllocator::new(&ranges, d, &[NodeId(0)], config).unwrap();
    let mut cpu = alloc.try_cpu(CpuId(0)).unwrap();
    let nodes: Vec<u32> = (0..192)
        .map(|_| alloc.node_of(cpu.alloc_frame().unwrap()).unwrap().0)
        .collect();
    assert!(nodes[..64].iter().all(|&n| n == 0));
    assert!(nodes[64..128].iter().all(|&n| n == 1));
    assert!(nodes[128..].iter().all(|&n| n == 2));
    assert_eq!(cpu.alloc_frame(), Err(AllocError::NoMemory));
    let (s0, s1, s2) = (stats(&alloc, 0), stats(&alloc, 1), stats(&alloc, 2));
    assert_eq!(
        (s0.numa_hit, s0.numa_foreign, s0.alloc_failures),
        (64, 128, 1)
    );
    assert_eq!((s1.numa_miss, s1.other_node, s2.numa_miss), (64, 64, 64));
}

#[test]
fn policies_place_frames() {
    let alloc = two_nodes(4096, 0, FrameConfig::default());
    let mut cpu = alloc.try_cpu(CpuId(0)).unwrap();
    let node = |cpu: &mut CpuHandle, order, policy| {
        alloc.node_of(cpu.alloc(order, policy).unwrap()).unwrap().0
    };
    assert_eq!(node(&mut cpu, o(0), Policy::Local), 0);
    assert_eq!(node(&mut cpu, o(3), Policy::Preferred(NodeId(1))), 1);
    assert_eq!(
        node(&mut cpu, o(0), Policy::Bind(NodeMask::single(NodeId(1)))),
        1
    );
    let mask = NodeMask::first_n(2);
    let picks: Vec<u32> = (0..6)
        .map(|_| node(&mut cpu, o(0), Policy::Interleave(mask)))
        .collect();
    assert_eq!(picks, [0, 1, 0, 1, 0, 1]);
    assert_eq!(stats(&alloc, 1).interleave_hit, 3);
    assert_eq!(stats(&alloc, 0).interleave_hit, 3);
    assert_eq!(
        cpu.alloc(o(0), Policy::Bind(NodeMask::EMPTY)),
        Err(AllocError::InvalidPolicy)
    );
    assert_eq!(
        cpu.alloc(o(0), Policy::Preferred(NodeId(7))),
        Err(AllocError::InvalidPolicy)
    );
}

#[test]
fn bind_fails_at_min_instead_of_falling_back() {
    let alloc = two_nodes(256, 16, FrameConfig::default());
    let mut cpu = alloc.try_cpu(CpuId(0)).unwrap();
    let bind0 = Policy::Bind(NodeMask::single(NodeId(0)));
    let mut n = 0;
    while cpu.alloc(o(0), bind0).is_ok() {
        n += 1;
    }
    assert_eq!(n, 240, "stops exactly at min");
    assert_eq!(stats(&alloc, 0).free_buddy, PageCount(16));
    assert_eq!(alloc.node_of(cpu.alloc_frame().unwrap()), Some(NodeId(1)));
}

#[test]
fn kernel_blocks_reach_into_half_the_reserve_and_fall_back() {
    let alloc = two_nodes(256, 32, FrameConfig::default());
    let mut taken = Vec::new();
    while let Ok(pfn) = alloc.alloc_for_kernel(NodeId(0), o(2)) {
        taken.push(pfn);
    }
    // 256 frames a node, low = min = 32: node 0 down to low (56 blocks of 4), node 1
    // down to low, then each down to half of min (4 blocks more each).
    let nodes: Vec<u32> = taken.iter().map(|&p| alloc.node_of(p).unwrap().0).collect();
    let runs = [(0, 56), (1, 56), (0, 4), (1, 4)];
    let expected: Vec<u32> = runs
        .iter()
        .flat_map(|&(node, n)| core::iter::repeat_n(node, n))
        .collect();
    assert_eq!(nodes, expected);
    assert_eq!(stats(&alloc, 0).free_buddy, PageCount(16));
    assert_eq!(stats(&alloc, 1).free_buddy, PageCount(16));
    for pfn in taken {
        alloc.free(pfn, o(2)).unwrap();
    }
    alloc.drain_all();
    assert_conserved(&alloc);
    assert_eq!(stats(&alloc, 0).free_buddy, PageCount(256));
}

#[test]
fn free_errors_are_reported() {
    let alloc = two_nodes(256, 0, FrameConfig::default());
    let mut cpu = alloc.try_cpu(CpuId(0)).unwrap();
    let block = cpu.alloc(o(2), Policy::Local).unwrap();
    assert_eq!(cpu.free(Pfn(1), o(0)), Err(FreeError::NotManaged(Pfn(1))));
    assert_eq!(
        cpu.free(block.add(1), o(2)),
        Err(FreeError::Misaligned(block.add(1), o(2)))
    );
    cpu.free(block, o(2)).unwrap();
    assert_eq!(
        cpu.free(block, o(2)),
        Err(FreeError::NotAllocated(block, o(2)))
    );
    assert_conserved(&alloc);
}

#[derive(Default)]
struct FakeZeroer(Mutex<Vec<(Pfn, PageCount)>>);
impl FrameZeroer for FakeZeroer {
    fn zero_frames(&self, first: Pfn, pages: PageCount) -> u64 {
        self.0.lock().unwrap().push((first, pages));
        100 * pages.0
    }
}

#[test]
fn zeroing_happens_once_per_allocation_and_is_counted() {
    let alloc = two_nodes(4096, 0, FrameConfig::default());
    let zeroer = FakeZeroer::default();
    let mut cpu = alloc.try_cpu(CpuId(0)).unwrap();
    let a = cpu.alloc_zeroed(o(0), Policy::Local, &zeroer).unwrap();
    let b = cpu
        .alloc_zeroed(Order::HUGE_2M, Policy::Preferred(NodeId(1)), &zeroer)
        .unwrap();
    cpu.alloc_frame().unwrap();
    assert_eq!(
        *zeroer.0.lock().unwrap(),
        [(a, PageCount(1)), (b, PageCount(512))]
    );
    let c = alloc.block_on_wait_for_test(CpuId(3));
    alloc.zero(c, o(0), &zeroer);
    assert_eq!(
        (stats(&alloc, 0).zeroed_pages, stats(&alloc, 0).zero_ns),
        (1, 100)
    );
    assert_eq!(
        (stats(&alloc, 1).zeroed_pages, stats(&alloc, 1).zero_ns),
        (513, 51_300)
    );
}

impl FrameAllocator {
    /// An `alloc_wait` that is satisfied at once, run to completion.
    fn block_on_wait_for_test(&self, cpu: CpuId) -> Pfn {
        let (r, polls) = block_on(self.alloc_wait(cpu, o(0), Policy::Local));
        assert_eq!(polls, 1);
        r.unwrap()
    }
}

/// Takes every frame node 0 gives a bind-to-node-0 caller, leaving it at `min`.
fn exhaust_node0(cpu: &mut CpuHandle) -> Vec<Pfn> {
    let mut held = Vec::new();
    while let Ok(pfn) = cpu.alloc(o(0), Policy::Bind(NodeMask::single(NodeId(0)))) {
        held.push(pfn);
    }
    held
}

#[test]
fn alloc_wait_sleeps_under_min_and_wakes_on_a_local_free() {
    let alloc = two_nodes(512, 32, FrameConfig::default());
    let mut cpu0 = alloc.try_cpu(CpuId(0)).unwrap();
    let held = exhaust_node0(&mut cpu0);
    assert_eq!(held.len(), 480);
    let bind0 = Policy::Bind(NodeMask::single(NodeId(0)));
    thread::scope(|s| {
        let alloc = &alloc;
        let held = &held;
        let freer = s.spawn(move || {
            let mut cpu1 = alloc.try_cpu(CpuId(1)).unwrap();
            // Wait until the waiter is parked, then free one frame through the
            // waiting node's CPU: it bypasses the cache so the waiter sees it.
            while stats(alloc, 0).alloc_waits == 0 {
                thread::sleep(Duration::from_millis(1));
            }
            cpu1.free_frame(held[0]).unwrap();
            assert_eq!(cpu1.cached(), PageCount(0));
        });
        let (got, polls) = block_on(alloc.alloc_wait(CpuId(0), o(0), bind0));
        assert_eq!(got, Ok(held[0]));
        assert!(polls <= 3, "woken, not polled in a loop: {polls} polls");
        freer.join().unwrap();
    });
    assert_eq!(stats(&alloc, 0).alloc_waits, 1);
}

#[test]
fn alloc_wait_wakes_on_a_remote_free() {
    let alloc = two_nodes(512, 32, FrameConfig::default());
    let mut cpu0 = alloc.try_cpu(CpuId(0)).unwrap();
    let held = exhaust_node0(&mut cpu0);
    let waiting = Policy::Bind(NodeMask::single(NodeId(0)));
    thread::scope(|s| {
        let alloc = &alloc;
        let held = &held;
        let waiter =
            s.spawn(move || block_on(alloc.alloc_wait(CpuId(1), Order::new(1).unwrap(), waiting)));
        while stats(alloc, 0).alloc_waits == 0 {
            thread::sleep(Duration::from_millis(1));
        }
        // A CPU of node 1 frees two node-0 frames that form an order-1 block.
        let mut cpu2 = alloc.try_cpu(CpuId(2)).unwrap();
        let pair: Vec<Pfn> = held
            .iter()
            .copied()
            .filter(|p| p.0 & !1 == held[0].0 & !1)
            .collect();
        assert_eq!(pair.len(), 2);
        for pfn in pair {
            cpu2.free_frame(pfn).unwrap();
        }
        let (got, polls) = waiter.join().unwrap();
        assert_eq!(got, Ok(Pfn(held[0].0 & !1)));
        assert!(polls <= 4, "{polls} polls");
    });
}

#[derive(Default)]
struct CountingHooks {
    reclaims: AtomicUsize,
    ooms: Mutex<Vec<OomRequest>>,
}
impl Reclaimer for CountingHooks {
    fn wake_reclaim(&self, _node: NodeId) {
        self.reclaims.fetch_add(1, Ordering::Relaxed);
    }
}
impl OomHandler for CountingHooks {
    fn out_of_memory(&self, request: &OomRequest) {
        self.ooms.lock().unwrap().push(*request);
    }
}

#[test]
fn waiters_kick_reclaim_each_round_and_escalate_to_oom() {
    let hooks = Arc::new(CountingHooks::default());
    let ranges = [NodeRange {
        node: NodeId(0),
        phys_start: 0,
        phys_end: 64 * PAGE_SIZE,
    }];
    let config = FrameConfig {
        oom_after_rounds: 3,
        ..FrameConfig::default()
    };
    let alloc = FrameAllocator::with_hooks(
        &ranges,
        DistanceMatrix::uniform(1).unwrap(),
        &[NodeId(0)],
        config,
        hooks.clone(),
        hooks.clone(),
    )
    .unwrap();
    let w = Watermarks {
        min: PageCount(8),
        low: PageCount(16),
        high: PageCount(24),
    };
    alloc.set_node_watermarks(NodeId(0), w);
    let mut cpu = alloc.try_cpu(CpuId(0)).unwrap();
    let held: Vec<Pfn> = core::iter::from_fn(|| cpu.alloc_frame().ok()).collect();
    assert_eq!(held.len(), 56);
    assert_eq!(
        hooks.reclaims.load(Ordering::Relaxed),
        1,
        "woken once on crossing low"
    );
    let mut fut = Box::pin(alloc.alloc_wait(CpuId(0), o(0), Policy::Local));
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..3 {
        assert!(fut.as_mut().poll(&mut cx).is_pending());
    }
    assert_eq!(fut.rounds(), 3);
    assert_eq!(hooks.reclaims.load(Ordering::Relaxed), 4);
    assert_eq!(
        *hooks.ooms.lock().unwrap(),
        [OomRequest {
            order: o(0),
            nodes: NodeMask::first_n(1),
            rounds: 3
        }]
    );
    drop(fut);
    // The dropped waiter unregistered: local frees go to the cache again.
    cpu.free_frame(held[0]).unwrap();
    assert_eq!(cpu.cached(), PageCount(1));
    assert_eq!(stats(&alloc, 0).oom_calls, 1);
}

#[test]
fn drain_all_returns_everything() {
    let alloc = two_nodes(1024, 0, FrameConfig::default());
    let initial = [alloc.free_blocks(NodeId(0)), alloc.free_blocks(NodeId(1))];
    for c in 0..4 {
        let mut cpu = alloc.try_cpu(CpuId(c)).unwrap();
        let frames: Vec<Pfn> = (0..100).map(|_| cpu.alloc_frame().unwrap()).collect();
        // Free every other frame on the CPU of the other node.
        let mut other = alloc.try_cpu(CpuId((c + 2) % 4)).unwrap();
        for (i, pfn) in frames.into_iter().enumerate() {
            if i % 2 == 0 {
                cpu.free_frame(pfn).unwrap()
            } else {
                other.free_frame(pfn).unwrap()
            }
        }
    }
    assert!(stats(&alloc, 0).free_cached.0 > 0);
    let report = alloc.drain_all();
    assert_eq!(report.busy_cpus, 0);
    assert!(report.drained.0 > 0);
    assert_eq!(
        [alloc.free_blocks(NodeId(0)), alloc.free_blocks(NodeId(1))],
        initial
    );
    let s = stats(&alloc, 0);
    assert_eq!(
        (s.free_cached, s.free_queued, s.free_buddy),
        (PageCount(0), PageCount(0), PageCount(1024))
    );
}

#[test]
fn builds_a_million_frames_per_node_quickly() {
    let start = std::time::Instant::now();
    let alloc = two_nodes(1 << 20, 0, FrameConfig::default());
    let elapsed = start.elapsed();
    assert_eq!(alloc.total_pages(), PageCount(2 << 20));
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    let default = FrameAllocator::new(
        &[NodeRange {
            node: NodeId(0),
            phys_start: 0,
            phys_end: 4 << 30,
        }],
        DistanceMatrix::uniform(1).unwrap(),
        &[NodeId(0)],
        FrameConfig::default(),
    )
    .unwrap();
    // Linux: min_free_kbytes = sqrt(4 GiB in KiB * 16) = 8192 KiB = 2048 pages.
    assert_eq!(default.watermarks(NodeId(0)).unwrap().min, PageCount(2048));
}

#[test]
fn bad_cache_tunables_are_refused() {
    let ranges = [NodeRange {
        node: NodeId(0),
        phys_start: 0,
        phys_end: MIB,
    }];
    for (batch, high) in [(0, 10), (20, 10), (100, 500)] {
        let config = FrameConfig {
            pcp_batch: batch,
            pcp_high: high,
            ..FrameConfig::default()
        };
        let r = FrameAllocator::new(
            &ranges,
            DistanceMatrix::uniform(1).unwrap(),
            &[NodeId(0)],
            config,
        );
        assert_eq!(r.err(), Some(TopologyError::BadCacheTunables));
    }
}

/// Four threads as four CPUs on two nodes each allocate and free 100k frames,
/// handing some frames to a CPU of the other node to free remotely.
#[test]
fn four_cpus_two_nodes_threaded() {
    const OPS: usize = 100_000;
    // Large enough for the frames parked in mailboxes of partners that finished early.
    let alloc = two_nodes(64 * 1024, 64, FrameConfig::default());
    let initial = [alloc.free_blocks(NodeId(0)), alloc.free_blocks(NodeId(1))];
    let mailboxes: Vec<crossbeam_queue::SegQueue<Pfn>> =
        (0..4).map(|_| Default::default()).collect();
    thread::scope(|s| {
        for c in 0..4u32 {
            let (alloc, mailboxes) = (&alloc, &mailboxes);
            s.spawn(move || {
                let mut cpu = alloc.try_cpu(CpuId(c)).unwrap();
                let own = NodeId(c / 2);
                let partner = ((c + 2) % 4) as usize;
                let mut held = Vec::with_capacity(256);
                let mut allocated = 0;
                while allocated < OPS {
                    while let Some(pfn) = mailboxes[c as usize].pop() {
                        cpu.free_frame(pfn).unwrap();
                    }
                    for _ in 0..256 {
                        let pfn = cpu.alloc_frame().unwrap();
                        assert_eq!(
                            alloc.node_of(pfn),
                            Some(own),
                            "own node while it has memory"
                        );
                        held.push(pfn);
                    }
                    allocated += 256;
                    for (i, pfn) in held.drain(..).enumerate() {
                        if i % 8 == 0 {
                            mailboxes[partner].push(pfn);
                        } else {
                            cpu.free_frame(pfn).unwrap();
                        }
                    }
                }
            });
        }
    });
    for (c, mailbox) in mailboxes.iter().enumerate() {
        let mut cpu = alloc.try_cpu(CpuId(c as u32)).unwrap();
        while let Some(pfn) = mailbox.pop() {
            cpu.free_frame(pfn).unwrap();
        }
    }
    assert_conserved(&alloc);
    alloc.drain_all();
    assert_eq!(
        [alloc.free_blocks(NodeId(0)), alloc.free_blocks(NodeId(1))],
        initial
    );
    for n in 0..2 {
        let s = stats(&alloc, n);
        assert_eq!(s.pgalloc, 2 * 100_096);
        assert_eq!(s.pgfree, s.pgalloc);
        assert_eq!((s.numa_miss, s.other_node, s.bad_frees), (0, 0, 0));
        assert_eq!(s.remote_frees, 2 * 100_096 / 8);
    }
}

/// One step of the property tests: CPU, alloc (order, policy) or free (pick).
#[derive(Clone, Debug)]
enum Op {
    Alloc { cpu: u32, order: u8, policy: u8 },
    Free { cpu: u32, pick: prop::sample::Index },
    Drain { cpu: u32 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u32..4, prop_oneof![3 => Just(0u8), 1 => 0u8..6], 0u8..5)
            .prop_map(|(cpu, order, policy)| Op::Alloc { cpu, order, policy }),
        4 => (0u32..4, any::<prop::sample::Index>()).prop_map(|(cpu, pick)| Op::Free { cpu, pick }),
        1 => (0u32..4).prop_map(|cpu| Op::Drain { cpu }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Any sequence of allocations (any order, any policy), frees (on any CPU,
    /// local or remote) and drains conserves frames, never hands a frame out
    /// twice, respects bind masks and watermarks, and after freeing everything and
    /// draining, every node's free lists are exactly as built.
    #[test]
    fn whole_allocator_conserves_and_restores(ops in proptest::collection::vec(op(), 1..300), min in 0u64..8) {
        let alloc = two_nodes(300, min, FrameConfig { pcp_batch: 4, pcp_high: 8, ..FrameConfig::default() });
        let initial = [alloc.free_blocks(NodeId(0)), alloc.free_blocks(NodeId(1))];
        let mut held: Vec<(Pfn, Order)> = Vec::new();
        let mut frames: BTreeSet<u64> = BTreeSet::new();
        for op in ops {
            match op {
                Op::Alloc { cpu, order, policy } => {
                    let order = o(order);
                    let policy = match policy {
                        0 => Policy::Local,
                        1 => Policy::Preferred(NodeId(1)),
                        2 => Policy::Bind(NodeMask::single(NodeId(0))),
                        3 => Policy::Bind(NodeMask::first_n(2)),
                        _ => Policy::Interleave(NodeMask::first_n(2)),
                    };
                    let mut h = alloc.try_cpu(CpuId(cpu)).unwrap();
                    if let Ok(pfn) = h.alloc(order, policy) {
                        prop_assert!(pfn.is_aligned(order));
                        let node = alloc.node_of(pfn).unwrap();
                        if let Policy::Bind(mask) = policy { prop_assert!(mask.contains(node)); }
                        for f in pfn.0..pfn.0 + order.pages() {
                            prop_assert!(frames.insert(f), "frame {:#x} handed out twice", f);
                        }
                        held.push((pfn, order));
                    }
                }
                Op::Free { cpu, pick } => {
                    if held.is_empty() { continue; }
                    let (pfn, order) = held.swap_remove(pick.index(held.len()));
                    alloc.try_cpu(CpuId(cpu)).unwrap().free(pfn, order).unwrap();
                    for f in pfn.0..pfn.0 + order.pages() { frames.remove(&f); }
                }
                Op::Drain { cpu } => { alloc.try_cpu(CpuId(cpu)).unwrap().drain(); }
            }
            for n in 0..2 {
                let s = stats(&alloc, n);
                prop_assert!(s.free_buddy.0 >= min.min(s.free_buddy.0));
                prop_assert_eq!(s.free().0 + s.pgalloc - s.pgfree, s.present.0);
            }
            let free: u64 = (0..2).map(|n| stats(&alloc, n).free().0).sum();
            prop_assert_eq!(free + frames.len() as u64, 600);
        }
        for (i, (pfn, order)) in held.into_iter().enumerate() {
            alloc.try_cpu(CpuId(i as u32 % 4)).unwrap().free(pfn, order).unwrap();
        }
        alloc.drain_all();
        prop_assert_eq!([alloc.free_blocks(NodeId(0)), alloc.free_blocks(NodeId(1))], initial);
    }

    /// Frames allocated on one node and freed by CPUs of the other node all reach
    /// their owner: counted as remote frees, drained into the owner's buddy.
    #[test]
    fn remote_frees_reach_their_owner(n in 1usize..200, owner in 0u32..2) {
        let alloc = two_nodes(512, 0, FrameConfig { remote_queue_capacity: 64, ..FrameConfig::default() });
        let mut mine = alloc.try_cpu(CpuId(owner * 2)).unwrap();
        let frames: Vec<Pfn> = (0..n).map(|_| mine.alloc_frame().unwrap()).collect();
        let mut other = alloc.try_cpu(CpuId((1 - owner) * 2 + 1)).unwrap();
        for pfn in &frames {
            prop_assert_eq!(alloc.node_of(*pfn), Some(NodeId(owner)));
            other.free_frame(*pfn).unwrap();
        }
        prop_assert_eq!(other.cached(), PageCount(0));
        let s = stats(&alloc, owner);
        prop_assert_eq!(s.remote_frees, n as u64);
        // A full queue sends the free through the lock, which drains the queue.
        prop_assert_eq!(s.free_queued.0 + s.remote_drained + s.remote_overflows, n as u64);
        mine.drain();
        let s = stats(&alloc, owner);
        prop_assert_eq!((s.free_buddy.0, s.free_queued.0), (512, 0));
        prop_assert_eq!(stats(&alloc, 1 - owner).pgfree, 0);
    }
}

#[test]
fn the_kernel_can_share_the_allocator_and_use_unchecked_handles() {
    fn shareable<T: Send + Sync>() {}
    shareable::<FrameAllocator>();
    let alloc = two_nodes(64, 0, FrameConfig::default());
    // SAFETY: nothing else uses CPU 3 while this handle lives (the kernel's
    // interrupts-off contract, upheld here by a single thread).
    let mut h = unsafe { alloc.cpu_unchecked(CpuId(3)) }.unwrap();
    let pfn = h.alloc_frame().unwrap();
    assert_eq!(alloc.node_of(pfn), Some(NodeId(1)));
    h.free_frame(pfn).unwrap();
    assert_eq!(h.cpu(), CpuId(3));
    assert_eq!(h.mem_node(), NodeId(1));
    drop(h);
    // SAFETY: as above; the previous handle is gone.
    assert!(unsafe { alloc.cpu_unchecked(CpuId(9)) }.is_none());
}

#[test]
fn free_batch_gives_each_node_its_frames_back_in_any_order() {
    let alloc = two_nodes(4096, 0, FrameConfig::default());
    let before = alloc.free_pages();
    let mut frames = Vec::new();
    for i in 0..3000 {
        let node = NodeId(i % 2);
        frames.push(alloc.alloc_on_node(node, Order::FRAME_4K).unwrap());
    }
    assert_eq!(alloc.free_pages().0, before.0 - 3000);
    // Interleaved nodes, more than one lock's chunk on each.
    frames.reverse();
    alloc.free_batch(&mut frames);
    assert_eq!(alloc.free_pages(), before);
    assert_eq!(
        stats(&alloc, 0).free_buddy.0 + stats(&alloc, 0).free_queued.0,
        4096
    );
    assert_eq!(
        stats(&alloc, 1).free_buddy.0 + stats(&alloc, 1).free_queued.0,
        4096
    );
    assert_eq!(stats(&alloc, 0).pgfree + stats(&alloc, 1).pgfree, 3000);
}

#[test]
fn free_batch_refuses_a_frame_no_node_owns() {
    let alloc = two_nodes(64, 0, FrameConfig::default());
    let before = alloc.free_pages();
    let mut frames = vec![
        alloc.alloc_on_node(NodeId(1), Order::FRAME_4K).unwrap(),
        Pfn(1),
    ];
    alloc.free_batch(&mut frames);
    assert_eq!(alloc.free_pages(), before);
}

/// Records which node's reclaim was woken, in order.
#[derive(Default)]
struct NodeWakes(Mutex<Vec<u32>>);
impl Reclaimer for NodeWakes {
    fn wake_reclaim(&self, node: NodeId) {
        self.0.lock().unwrap().push(node.0);
    }
}

/// Two nodes of 256 frames, CPUs 0-1 on node 0 and 2-3 on node 1, min 16, low 48,
/// high 64 on both, reclaim wakes recorded.
fn two_nodes_with_gaps() -> (FrameAllocator, Arc<NodeWakes>) {
    let wakes = Arc::new(NodeWakes::default());
    let ranges = [
        NodeRange {
            node: NodeId(0),
            phys_start: 16 * MIB,
            phys_end: 16 * MIB + 256 * PAGE_SIZE,
        },
        NodeRange {
            node: NodeId(1),
            phys_start: 65536 * MIB,
            phys_end: 65536 * MIB + 256 * PAGE_SIZE,
        },
    ];
    let cpus = [NodeId(0), NodeId(0), NodeId(1), NodeId(1)];
    let alloc = FrameAllocator::with_hooks(
        &ranges,
        DistanceMatrix::uniform(2).unwrap(),
        &cpus,
        FrameConfig::default(),
        wakes.clone(),
        Arc::new(NoOom),
    )
    .unwrap();
    let w = Watermarks {
        min: PageCount(16),
        low: PageCount(48),
        high: PageCount(64),
    };
    alloc.set_node_watermarks(NodeId(0), w);
    alloc.set_node_watermarks(NodeId(1), w);
    (alloc, wakes)
}

/// Allocates single frames under `policy` from CPU 0 until none is left: the frames,
/// and the reclaim wakes seen once `above_low` frames were taken.
fn fill(
    alloc: &FrameAllocator,
    wakes: &NodeWakes,
    policy: Policy,
    above_low: usize,
) -> (Vec<Pfn>, Vec<u32>) {
    let mut cpu = alloc.try_cpu(CpuId(0)).unwrap();
    let mut frames = Vec::new();
    let mut woken_above_low = None;
    while let Ok(pfn) = cpu.alloc(o(0), policy) {
        frames.push(pfn);
        if frames.len() == above_low {
            woken_above_low = Some(wakes.0.lock().unwrap().clone());
        }
    }
    (frames, woken_above_low.expect("filled past low"))
}

fn nodes_of(alloc: &FrameAllocator, frames: &[Pfn]) -> Vec<u32> {
    frames
        .iter()
        .map(|&p| alloc.node_of(p).unwrap().0)
        .collect()
}

fn runs(runs: &[(u32, usize)]) -> Vec<u32> {
    runs.iter()
        .flat_map(|&(node, n)| core::iter::repeat_n(node, n))
        .collect()
}

#[test]
fn local_falls_back_above_low_before_either_node_dips_to_min() {
    let (alloc, wakes) = two_nodes_with_gaps();
    let (frames, woken) = fill(&alloc, &wakes, Policy::Local, 2 * 208);
    // The local node down to low (256 - 48), then the other node down to low, with no
    // reclaim woken; then both are woken and each goes on down to min, local first.
    assert_eq!(
        nodes_of(&alloc, &frames),
        runs(&[(0, 208), (1, 208), (0, 32), (1, 32)])
    );
    assert!(
        woken.is_empty(),
        "reclaim woken while a node had room above low"
    );
    assert_eq!(*wakes.0.lock().unwrap(), [0, 1]);
    assert_eq!(stats(&alloc, 0).free_buddy, PageCount(16));
    assert_eq!(stats(&alloc, 1).free_buddy, PageCount(16));
    assert_eq!(stats(&alloc, 0).alloc_failures, 1);
    assert_eq!(stats(&alloc, 1).numa_miss, 240);
}

#[test]
fn preferred_fills_its_node_to_low_then_the_callers() {
    let (alloc, wakes) = two_nodes_with_gaps();
    let (frames, woken) = fill(&alloc, &wakes, Policy::Preferred(NodeId(1)), 2 * 208);
    assert_eq!(
        nodes_of(&alloc, &frames),
        runs(&[(1, 208), (0, 208), (1, 32), (0, 32)])
    );
    assert!(woken.is_empty());
    assert_eq!(*wakes.0.lock().unwrap(), [1, 0]);
}

#[test]
fn bind_never_leaves_its_mask_and_wakes_only_its_nodes() {
    let (alloc, wakes) = two_nodes_with_gaps();
    let bind1 = Policy::Bind(NodeMask::single(NodeId(1)));
    let (frames, woken) = fill(&alloc, &wakes, bind1, 208);
    // Node 1 down to low, then its reclaim is woken and it goes down to min; node 0,
    // outside the mask, is never used and its reclaim never woken.
    assert_eq!(nodes_of(&alloc, &frames), runs(&[(1, 208), (1, 32)]));
    assert!(woken.is_empty());
    assert_eq!(*wakes.0.lock().unwrap(), [1]);
    assert_eq!(stats(&alloc, 0).free_buddy, PageCount(256));
}

#[test]
fn reclaim_is_woken_once_until_the_node_is_back_at_high() {
    let (alloc, wakes) = two_nodes_with_gaps();
    let (frames, _) = fill(&alloc, &wakes, Policy::Local, 416);
    assert_eq!(*wakes.0.lock().unwrap(), [0, 1]);
    let on0: Vec<Pfn> = frames
        .iter()
        .copied()
        .filter(|&p| alloc.node_of(p) == Some(NodeId(0)))
        .collect();
    let give_back = |pfns: &[Pfn]| {
        for &pfn in pfns {
            alloc.free(pfn, o(0)).unwrap();
        }
        alloc.drain_all();
    };
    // Node 0 back to 40 free, still under high: its reclaim stays woken, so the
    // frames are taken again without a second wake-up.
    give_back(&on0[..24]);
    let (again, _) = fill(&alloc, &wakes, Policy::Local, 1);
    assert_eq!(nodes_of(&alloc, &again), runs(&[(0, 24)]));
    assert_eq!(*wakes.0.lock().unwrap(), [0, 1]);
    // Back at high (64 free): re-armed. Taking node 0 under low again while node 1
    // is under low too wakes node 0's reclaim a second time (node 1's still runs).
    give_back(&again);
    give_back(&on0[24..48]);
    assert_eq!(stats(&alloc, 0).free_buddy, PageCount(64));
    let (third, _) = fill(&alloc, &wakes, Policy::Local, 16);
    assert_eq!(nodes_of(&alloc, &third), runs(&[(0, 48)]));
    assert_eq!(*wakes.0.lock().unwrap(), [0, 1, 0]);
}
