//! Single-frame alloc+free cost of `mm::frame` next to `buddy_system_allocator`
//! (its `FrameAllocator` behind a `spin::Mutex`, the usual way to share it), from
//! one thread and from two threads at once (each thread its own CPU).
//!
//! The comparison allocator is measured warm (one frame held, see [`bsa_alloc`]);
//! the summary also prints its cold figure.
//!
//! Two-thread figures are wall-clock time per iteration in which *each* thread did
//! one alloc+free. After criterion's report the bench prints `name=value` lines
//! with its own short measurement and the ratios.

use std::hint::black_box;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use mm::frame::{DistanceMatrix, FrameAllocator, FrameConfig, NodeId, NodeRange, PAGE_SIZE};
use sched::CpuId;

/// Frames per node.
const FRAMES: u64 = 64 * 1024;

/// Two nodes, CPUs 0-1 on node 0 and 2-3 on node 1.
fn mm_alloc() -> FrameAllocator {
    let ranges = [
        NodeRange {
            node: NodeId(0),
            phys_start: 1 << 30,
            phys_end: (1 << 30) + FRAMES * PAGE_SIZE,
        },
        NodeRange {
            node: NodeId(1),
            phys_start: 8 << 30,
            phys_end: (8 << 30) + FRAMES * PAGE_SIZE,
        },
    ];
    let cpus = [NodeId(0), NodeId(0), NodeId(1), NodeId(1)];
    FrameAllocator::new(
        &ranges,
        DistanceMatrix::uniform(2).expect("matrix"),
        &cpus,
        FrameConfig::default(),
    )
    .expect("allocator")
}

type Bsa = spin::Mutex<buddy_system_allocator::FrameAllocator<32>>;

/// `buddy_system_allocator` over the same number of frames. With `warm`, one frame
/// stays allocated so that its buddy sits on the order-0 list and each alloc+free
/// is one list removal and insertion; without it every alloc splits (and every
/// free re-merges) a block through all 17 orders.
fn bsa_alloc(warm: bool) -> Bsa {
    let mut fa = buddy_system_allocator::FrameAllocator::<32>::new();
    let start = (1usize << 30) / PAGE_SIZE as usize;
    fa.add_frame(start, start + 2 * FRAMES as usize);
    if warm {
        black_box(fa.alloc(1));
    }
    spin::Mutex::new(fa)
}

/// `iters` alloc+free pairs on `cpu`.
fn mm_loop(alloc: &FrameAllocator, cpu: u32, iters: u64) {
    let mut h = alloc.try_cpu(CpuId(cpu)).expect("cpu");
    for _ in 0..iters {
        let pfn = h.alloc_frame().expect("frame");
        h.free_frame(black_box(pfn)).expect("free");
    }
}

/// `iters` alloc+free pairs on the shared locked allocator.
fn bsa_loop(alloc: &Bsa, iters: u64) {
    for _ in 0..iters {
        let f = alloc.lock().alloc(1).expect("frame");
        alloc.lock().dealloc(black_box(f), 1);
    }
}

/// Wall time for two threads each running `work(thread, iters)`, timed from a barrier.
fn two_threads(iters: u64, work: impl Fn(u32, u64) + Sync) -> Duration {
    let barrier = Barrier::new(3);
    thread::scope(|s| {
        let handles: Vec<_> = (0..2u32)
            .map(|t| {
                let (barrier, work) = (&barrier, &work);
                s.spawn(move || {
                    work(t, 1000); // warm the cache and the code
                    barrier.wait();
                    work(t, iters);
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        for h in handles {
            h.join().expect("worker");
        }
        start.elapsed()
    })
}

fn bench(c: &mut Criterion) {
    let mm = mm_alloc();
    let bsa = bsa_alloc(true);
    let mut g = c.benchmark_group("frame_alloc_free");
    g.sample_size(20);
    g.bench_function("mm/1-thread", |b| {
        let mut h = mm.try_cpu(CpuId(0)).expect("cpu");
        b.iter(|| {
            let pfn = h.alloc_frame().expect("frame");
            h.free_frame(black_box(pfn)).expect("free");
        })
    });
    g.bench_function("buddy_system_allocator/1-thread", |b| {
        b.iter(|| {
            let f = bsa.lock().alloc(1).expect("frame");
            bsa.lock().dealloc(black_box(f), 1);
        })
    });
    g.bench_function("mm/2-threads", |b| {
        b.iter_custom(|iters| two_threads(iters, |t, n| mm_loop(&mm, t, n)))
    });
    g.bench_function("buddy_system_allocator/2-threads", |b| {
        b.iter_custom(|iters| two_threads(iters, |_, n| bsa_loop(&bsa, n)))
    });
    g.finish();
}

criterion_group!(benches, bench);

/// ns per iteration over about `budget` of runs.
fn quick(budget: Duration, mut run: impl FnMut(u64) -> Duration) -> f64 {
    let mut iters = 10_000u64;
    loop {
        let t = run(iters);
        if t >= budget / 4 {
            let n = (iters as f64 * budget.as_secs_f64() / t.as_secs_f64()) as u64;
            return run(n).as_nanos() as f64 / n as f64;
        }
        iters *= 4;
    }
}

fn summary() {
    let budget = Duration::from_millis(500);
    let mm = mm_alloc();
    let bsa = bsa_alloc(true);
    let bsa_cold = bsa_alloc(false);
    let mm1 = quick(budget, |n| {
        let t = Instant::now();
        mm_loop(&mm, 0, n);
        t.elapsed()
    });
    let bsa1 = quick(budget, |n| {
        let t = Instant::now();
        bsa_loop(&bsa, n);
        t.elapsed()
    });
    let bsa1_cold = quick(budget, |n| {
        let t = Instant::now();
        bsa_loop(&bsa_cold, n);
        t.elapsed()
    });
    let mm2 = quick(budget, |n| two_threads(n, |t, k| mm_loop(&mm, t, k)));
    let bsa2 = quick(budget, |n| two_threads(n, |_, k| bsa_loop(&bsa, k)));
    println!("mm_1thread_ns_per_op={mm1:.1}");
    println!("bsa_1thread_ns_per_op={bsa1:.1}");
    println!("bsa_cold_1thread_ns_per_op={bsa1_cold:.1}");
    println!("mm_2threads_ns_per_op={mm2:.1}");
    println!("bsa_2threads_ns_per_op={bsa2:.1}");
    println!("ratio_1thread_bsa_over_mm={:.1}", bsa1 / mm1);
    println!("ratio_2threads_bsa_over_mm={:.1}", bsa2 / mm2);
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    if !std::env::args().any(|a| a == "--list" || a == "--test") {
        summary();
    }
}
