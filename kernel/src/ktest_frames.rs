//! `test=frames`: the NUMA frame allocator in the booted kernel. Every CPU allocates and
//! frees 100k frames and must get them from its own node; the /proc/zoneinfo counters must
//! agree with what the test did; exhausting node 0 falls back to node 1; and an allocation
//! that would go below the min watermark waits until another task frees memory.

#![deny(unsafe_code)]

use crate::{arch::percpu, executor::scheduler, kprintln, mem::frames, procfs, smp};
use alloc::{collections::BTreeMap, vec::Vec};
use core::sync::atomic::{AtomicBool, Ordering};
use drivers::debug_exit::{exit_qemu, ExitCode};
use mm::frame::{Order, Policy, PAGE_SIZE};
use sched::CpuId;

/// Frames each CPU allocates and frees.
const PER_CPU: u64 = 100_000;

/// `(node, counter) -> value` from /proc/zoneinfo.
fn zoneinfo_counters() -> BTreeMap<(u32, &'static str), u64> {
    let text = procfs::read("/proc/zoneinfo").expect("zoneinfo");
    let mut out = BTreeMap::new();
    let mut node = 0;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Node ") {
            node = rest
                .split(',')
                .next()
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0);
            continue;
        }
        let mut words = line.split_whitespace();
        if let (Some(name), Some(value)) = (words.next(), words.next()) {
            for key in [
                "pgalloc",
                "pgfree",
                "numa_hit",
                "numa_miss",
                "numa_foreign",
                "alloc_waits",
                "nr_free_pages",
            ] {
                if name == key {
                    out.insert((node, key), value.parse().unwrap_or(0));
                }
            }
        }
    }
    out
}

fn delta(
    before: &BTreeMap<(u32, &'static str), u64>,
    after: &BTreeMap<(u32, &'static str), u64>,
    node: u32,
    key: &'static str,
) -> u64 {
    after.get(&(node, key)).copied().unwrap_or(0) - before.get(&(node, key)).copied().unwrap_or(0)
}

/// Runs the test as a task.
pub async fn run() {
    let sched = scheduler();
    let cpus = smp::online_cpus();
    let nodes = frames::allocator().nr_nodes() as u32;
    let before = zoneinfo_counters();

    // 1. Every CPU: 100k alloc+free, all from its own node.
    let mut jobs = Vec::new();
    for cpu in 0..cpus {
        jobs.push(sched.spawn_on(CpuId(cpu), async move {
            let node = percpu::current().node;
            let mut foreign = 0u64;
            for _ in 0..PER_CPU {
                let phys = frames::alloc().expect("frame");
                if frames::node_of(phys) != Some(node) {
                    foreign += 1;
                }
                frames::free(phys);
            }
            (node, foreign)
        }));
    }
    let mut per_node = BTreeMap::new();
    for (cpu, job) in jobs.into_iter().enumerate() {
        let (node, foreign) = job.await;
        assert_eq!(
            foreign, 0,
            "cpu {cpu} got {foreign} frames from another node"
        );
        *per_node.entry(node).or_insert(0u64) += PER_CPU;
    }
    let after = zoneinfo_counters();
    for node in 0..nodes {
        let expected = per_node.get(&node).copied().unwrap_or(0);
        let (alloc, free, hit) = (
            delta(&before, &after, node, "pgalloc"),
            delta(&before, &after, node, "pgfree"),
            delta(&before, &after, node, "numa_hit"),
        );
        kprintln!("frames: node {node}: test did {expected} allocs+frees; zoneinfo pgalloc +{alloc} pgfree +{free} numa_hit +{hit}");
        assert_eq!(alloc, expected, "node {node} pgalloc");
        assert_eq!(free, expected, "node {node} pgfree");
        assert_eq!(hit, expected, "node {node} numa_hit");
    }
    kprintln!(
        "frames: {} CPUs x {PER_CPU} frames, every frame from the CPU's own node",
        cpus
    );

    // 2. Exhaust node 0 from a node-0 CPU: node-0 frames first, then node 1 by distance.
    let fallback = sched
        .spawn_on(CpuId(0), async move {
            let before = zoneinfo_counters();
            let mut held = Vec::new();
            let mut from_node0 = 0u64;
            let first_fallback = loop {
                let Some(phys) = frames::alloc() else { panic!("allocation failed before any fallback") };
                held.push(phys);
                match frames::node_of(phys) {
                    Some(0) => from_node0 += 1,
                    other => break other,
                }
            };
            let mut remote = 1u64;
            for _ in 0..1000 {
                let phys = frames::alloc().expect("fallback frame");
                assert_eq!(frames::node_of(phys), first_fallback, "fallback left node 1 while it had memory");
                held.push(phys);
                remote += 1;
            }
            let after = zoneinfo_counters();
            kprintln!(
                "frames: node 0 exhausted after {from_node0} frames; fallback to node {:?}: {remote} frames; zoneinfo numa_miss(node 1) +{} numa_foreign(node 0) +{}",
                first_fallback,
                delta(&before, &after, 1, "numa_miss"),
                delta(&before, &after, 0, "numa_foreign")
            );
            assert!(delta(&before, &after, 1, "numa_miss") >= remote);
            assert!(delta(&before, &after, 0, "numa_foreign") >= remote);
            held
        })
        .await;
    let mut held = fallback;

    // 3. Take everything left, then an allocation must wait (not fail, not spin) until
    //    another task frees memory.
    let tail = sched
        .spawn_on(CpuId(0), async move {
            let mut more = Vec::new();
            while let Some(phys) = frames::alloc() {
                more.push(phys);
            }
            more
        })
        .await;
    held.extend(tail);
    let waits_before = zoneinfo_counters();
    let done = alloc::sync::Arc::new(AtomicBool::new(false));
    let done2 = done.clone();
    let waiter = sched.spawn_on(CpuId(cpus.saturating_sub(1)), async move {
        let cpu = percpu::current_cpu();
        let pfn = frames::allocator()
            .alloc_wait(cpu, Order::FRAME_4K, Policy::Local)
            .await
            .expect("waited frame");
        done2.store(true, Ordering::SeqCst);
        pfn.0 * PAGE_SIZE
    });
    sched.sleep(50_000_000).await;
    assert!(
        !done.load(Ordering::SeqCst),
        "an allocation below min completed without a free"
    );
    let polls_while_waiting = sched.stats(CpuId(cpus.saturating_sub(1))).polls;
    sched.sleep(50_000_000).await;
    let polls_later = sched.stats(CpuId(cpus.saturating_sub(1))).polls;
    kprintln!(
        "frames: waiter parked ({} polls on its CPU in 50 ms while waiting)",
        polls_later - polls_while_waiting
    );
    assert!(
        polls_later - polls_while_waiting < 10,
        "the waiting allocation is spinning"
    );
    // Free 4 MiB: the node goes back above min and the waiter completes.
    for phys in held.drain(held.len().saturating_sub(1024)..) {
        frames::free(phys);
    }
    let got = waiter.await;
    let waits_after = zoneinfo_counters();
    let waits: u64 = (0..nodes)
        .map(|n| delta(&waits_before, &waits_after, n, "alloc_waits"))
        .sum();
    kprintln!("frames: the waiting allocation completed after the free (frame {got:#x}); zoneinfo alloc_waits +{waits}");
    assert!(waits >= 1);
    frames::free(got);
    for phys in held {
        frames::free(phys);
    }
    kprintln!("frames test passed");
    exit_qemu(ExitCode::Success);
}
