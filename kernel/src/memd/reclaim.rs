//! Reclaim: one `kswapd` task per node and the direct-reclaim wait.
//!
//! A node's task sleeps until the frame allocator wakes it (the node fell under its
//! `low` watermark, [`KernelReclaimer`]) or a fault could not get a frame
//! ([`alloc_failed`]). It then runs rounds until the node's free memory is back at
//! `high`: each round moves the node's clock hand over the processes' address spaces
//! (`AddressSpace::reclaim_scan`, which takes only pages on this node) and writes the
//! pages it took with many writes in flight together (`Swap::write_out`). After each
//! round it completes the round's event, which the faults waiting for memory park on.
//!
//! Direct reclaim: a fault that finds no frame gets `AllocFailure::Wait` on the next
//! round's event while reclaim can still make progress, so the faulting thread parks
//! and other threads run; the OOM killer is asked only once reclaim has made no
//! progress for [`GIVE_UP_LAPS`] whole turns of the clock hand over every process
//! (or there is no swap room): a turn that only cleared accessed bits was aging, not
//! failure.

use super::swap::swap;
use crate::mem::frames;
use alloc::{sync::Arc, vec::Vec};
use conquer_once::spin::OnceCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use core::task::{Poll, Waker};
use mm::fault::{Completion, FaultFuture, WaitReason};
use mm::frame::{NodeId, Pfn};
use mm::swap::balance::{scan_split, ScanInputs, ScanSplit};
use mm::swap::ScanBudget;
use spin::Mutex;

/// `vm.swappiness` (60, range 0-200): how reclaim splits its rounds between anonymous
/// pages (to swap) and clean file pages (see `mm::swap::balance`).
pub static SWAPPINESS: crate::tunable::Key = crate::tunable::key(
    "vm.swappiness",
    &["/proc/sys/vm/swappiness"],
    crate::tunable::KeyKind::Int { min: 0, max: 200 },
    60,
    crate::tunable::keep,
);

/// Pages a round aims to free.
const ROUND_PAGES: usize = 256;
/// Pages a node may have in write-out at once.
const MAX_WRITING: usize = 1024;
/// Entries a round may look at, per page it aims to free.
const SCAN_FACTOR: usize = 8;
/// Turns of the clock hand over every process that freed nothing before faults are
/// told to go to the OOM killer (the first clears the accessed bits, the second finds
/// nothing to take).
pub const GIVE_UP_LAPS: u32 = 2;

/// One node's reclaim state.
struct NodeReclaim {
    node: NodeId,
    kicked: AtomicBool,
    waker: Mutex<Option<Waker>>,
    /// The clock hand: a pid and an address in it.
    hand: Mutex<(u32, u64)>,
    /// Completed after each round (the direct reclaimers' wait).
    round: Mutex<Arc<Completion>>,
    /// Whole turns of the hand since the last round that freed something.
    dry_laps: AtomicU32,
    /// Pages being written.
    writing: AtomicUsize,
    /// Which shmem object the shmem scan goes on with (an index into the list).
    shmem_hand: AtomicUsize,
}

static NODES: OnceCell<Vec<NodeReclaim>> = OnceCell::uninit();

/// Drops up to `max` clean, unmapped page-cache pages whose frames the filter accepts;
/// returns how many (a disk filesystem's cache).
pub type CacheShrinker = fn(max: usize, take: &dyn Fn(Pfn) -> bool) -> usize;

/// Counts the pages a page cache holds (what reclaim weighs against anonymous memory).
pub type CacheCounter = fn() -> u64;

/// The page caches reclaim may drop clean pages from, with their counters (installed
/// by the filesystems above this layer at mount).
static SHRINKERS: Mutex<Vec<(CacheShrinker, CacheCounter)>> = Mutex::new(Vec::new());

/// Lets reclaim drop clean pages of a page cache holding `count()` pages.
pub fn register_shrinker(shrinker: CacheShrinker, count: CacheCounter) {
    let mut list = SHRINKERS.lock();
    if !list
        .iter()
        .any(|(s, _)| core::ptr::fn_addr_eq(*s, shrinker))
    {
        list.push((shrinker, count));
    }
}

/// Whether some page cache can give pages back without swap.
fn has_shrinkers() -> bool {
    !SHRINKERS.lock().is_empty()
}

/// Pages held by the page caches reclaim can shrink (disk caches: `Cached` counts
/// them).
pub fn file_cache_pages() -> u64 {
    let list = SHRINKERS.lock().clone();
    list.iter().map(|(_, count)| count()).sum()
}

/// Clean file pages dropped from every registered cache, up to `max`.
fn shrink_file_caches(max: usize, take: &dyn Fn(Pfn) -> bool) -> usize {
    let list = SHRINKERS.lock().clone();
    let mut freed = 0;
    for (shrink, _) in list {
        if freed >= max {
            break;
        }
        freed += shrink(max - freed, take);
    }
    freed
}

static STOLEN_KSWAPD: AtomicU64 = AtomicU64::new(0);
static STOLEN_DIRECT: AtomicU64 = AtomicU64::new(0);
static SCANNED: AtomicU64 = AtomicU64::new(0);
static DIRECT_WAITS: AtomicU64 = AtomicU64::new(0);
static STOLEN_FILE: AtomicU64 = AtomicU64::new(0);
static TAKEN_ANON: AtomicU64 = AtomicU64::new(0);

/// Reclaim counters (`/proc/vmstat`).
pub struct ReclaimStats {
    /// Pages freed by rounds nobody waited for.
    pub stolen_kswapd: u64,
    /// Pages freed by rounds faults waited for.
    pub stolen_direct: u64,
    /// Entries looked at.
    pub scanned: u64,
    /// Faults that parked for memory.
    pub direct_waits: u64,
    /// Clean file pages dropped (`pgsteal_file`).
    pub stolen_file: u64,
    /// Anonymous pages taken for swap (`pgsteal_anon`), shmem pages included.
    pub taken_anon: u64,
}

/// The counters.
pub fn stats() -> ReclaimStats {
    ReclaimStats {
        stolen_kswapd: STOLEN_KSWAPD.load(Ordering::Relaxed),
        stolen_direct: STOLEN_DIRECT.load(Ordering::Relaxed),
        scanned: SCANNED.load(Ordering::Relaxed),
        direct_waits: DIRECT_WAITS.load(Ordering::Relaxed),
        stolen_file: STOLEN_FILE.load(Ordering::Relaxed),
        taken_anon: TAKEN_ANON.load(Ordering::Relaxed),
    }
}

/// The frame allocator's pressure handler: a node fell under its `low` watermark, or
/// an allocation failed.
struct KernelReclaimer;

impl frames::PressureHandler for KernelReclaimer {
    fn wake_reclaim(&self, node: NodeId) {
        kick(node);
    }

    fn alloc_failed(&self) -> mm::phys::AllocFailure {
        alloc_failed()
    }
}

/// Wakes `node`'s task (no allocation: runs inside the allocator's callers).
fn kick(node: NodeId) {
    let Some(r) = NODES.get().and_then(|n| n.get(node.0 as usize)) else {
        return;
    };
    if !r.kicked.swap(true, Ordering::AcqRel) {
        if let Some(w) = r.waker.lock().take() {
            w.wake();
        }
    }
}

/// One line on every node's reclaim state (for the hung-thread report).
pub fn describe() -> alloc::string::String {
    use core::fmt::Write;
    let mut out = alloc::string::String::from("reclaim:");
    for r in NODES.get().map_or(&[][..], |n| &n[..]) {
        let alloc = frames::allocator();
        let free = alloc.node_stats(r.node).map_or(0, |s| s.free().0);
        let high = alloc.watermarks(r.node).map_or(0, |m| m.high.0);
        let _ = write!(
            out,
            " node {}: kicked {}, writing {}, dry laps {}, round waiters {}, free {} (high {});",
            r.node.0,
            r.kicked.load(Ordering::Relaxed),
            r.writing.load(Ordering::Relaxed),
            r.dry_laps.load(Ordering::Relaxed),
            Arc::strong_count(&r.round.lock()) - 1,
            free,
            high,
        );
    }
    out
}

/// Starts one reclaim task per node (once swap exists to reclaim to, they find work).
pub fn start() {
    let nodes = frames::allocator().nr_nodes();
    let list = NODES.get_or_init(|| {
        (0..nodes as u32)
            .map(|n| NodeReclaim {
                node: NodeId(n),
                kicked: AtomicBool::new(false),
                waker: Mutex::new(None),
                hand: Mutex::new((0, 0)),
                round: Mutex::new(Completion::new()),
                dry_laps: AtomicU32::new(0),
                writing: AtomicUsize::new(0),
                shmem_hand: AtomicUsize::new(0),
            })
            .collect()
    });
    for i in 0..list.len() {
        drop(crate::executor::scheduler().spawn(kswapd(i)));
    }
    frames::set_pressure_handler(&KernelReclaimer);
}

/// A fault found no frame: park it on the next reclaim round if reclaim can still
/// make progress, else let the OOM path run.
fn alloc_failed() -> mm::phys::AllocFailure {
    let Some(nodes) = NODES.get() else {
        return mm::phys::AllocFailure::OutOfMemory;
    };
    let hopeless = nodes
        .iter()
        .all(|r| r.dry_laps.load(Ordering::Relaxed) >= GIVE_UP_LAPS);
    if (!swap().has_room() && !has_shrinkers()) || hopeless {
        return mm::phys::AllocFailure::OutOfMemory;
    }
    DIRECT_WAITS.fetch_add(1, Ordering::Relaxed);
    log::debug!(
        "direct reclaim wait at {} ms",
        crate::time::now_ns() / 1_000_000
    );
    // Wait for the round of the node of this CPU; every node is kicked.
    let here = frames::allocator()
        .cpu_node(crate::arch::percpu::current_cpu())
        .unwrap_or(NodeId(0));
    let round = nodes[(here.0 as usize).min(nodes.len() - 1)]
        .round
        .lock()
        .clone();
    for r in nodes {
        kick(r.node);
    }
    mm::phys::AllocFailure::Wait(FaultFuture::new(WaitReason::Memory, round))
}

/// Whether `node` is short: fewer free frames than its `high` watermark plus one
/// round of headroom (the watermark gaps of a small node are a few hundred pages,
/// less than a fault burst takes while a round is written).
fn below_high(node: NodeId) -> bool {
    let alloc = frames::allocator();
    let (Some(stats), Some(marks)) = (alloc.node_stats(node), alloc.watermarks(node)) else {
        return false;
    };
    stats.free().0 < marks.high.0 + ROUND_PAGES as u64
}

/// Sleeps until kicked.
async fn wait_kick(r: &NodeReclaim) {
    core::future::poll_fn(|cx| {
        if r.kicked.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        *r.waker.lock() = Some(cx.waker().clone());
        if r.kicked.swap(false, Ordering::AcqRel) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await
}

/// Completes the node's current round event (the direct reclaimers retry), counting
/// `freed` frames.
fn finish_round(r: &NodeReclaim, freed: usize) {
    let done = core::mem::replace(&mut *r.round.lock(), Completion::new());
    let direct = Arc::strong_count(&done) > 1;
    done.complete();
    if direct {
        STOLEN_DIRECT.fetch_add(freed as u64, Ordering::Relaxed);
    } else {
        STOLEN_KSWAPD.fetch_add(freed as u64, Ordering::Relaxed);
    }
}

/// The node's task: scans while the node is short, with up to [`MAX_WRITING`] pages
/// being written at once by write tasks of their own (each completes the round
/// event when its frames are free), so scanning and writing overlap.
async fn kswapd(index: usize) {
    let r: &'static NodeReclaim = &NODES.get().expect("started")[index];
    loop {
        wait_kick(r).await;
        loop {
            let waiters = Arc::strong_count(&r.round.lock()) > 1;
            if (!swap().has_room() && !has_shrinkers()) || (!below_high(r.node) && !waiters) {
                // Nothing to do (or nowhere to write): waiters retry, and go to the
                // OOM path if memory is still short.
                finish_round(r, 0);
                break;
            }
            if r.writing.load(Ordering::Acquire) >= MAX_WRITING {
                let round = r.round.lock().clone();
                FaultFuture::new(WaitReason::Memory, round).await;
                continue;
            }
            let (pages, freed, lapped) = scan_round(r);
            let taken = pages.len();
            log::debug!(
                "kswapd{}: at {} ms took {taken} freed {freed}, writing {}, free {:?}, dry laps {}",
                r.node.0,
                crate::time::now_ns() / 1_000_000,
                r.writing.load(Ordering::Relaxed),
                frames::allocator().node_stats(r.node).map(|s| s.free()),
                r.dry_laps.load(Ordering::Relaxed)
            );
            if taken != 0 {
                r.writing.fetch_add(taken, Ordering::AcqRel);
                drop(crate::executor::scheduler().spawn(async move {
                    let outcome = swap().write_out(pages, frames::mm_frames().clone()).await;
                    r.writing.fetch_sub(taken, Ordering::AcqRel);
                    finish_round(r, outcome.freed);
                }));
            }
            if freed != 0 {
                finish_round(r, freed);
            }
            if taken + freed != 0 {
                r.dry_laps.store(0, Ordering::Relaxed);
            } else if lapped
                && r.dry_laps.fetch_add(1, Ordering::Relaxed) + 1 >= GIVE_UP_LAPS
                && r.writing.load(Ordering::Acquire) == 0
            {
                // No progress and nothing in flight: faults now go to the OOM
                // killer; try again when kicked after memory came back.
                r.dry_laps.store(GIVE_UP_LAPS, Ordering::Relaxed);
                finish_round(r, 0);
                break;
            }
            sched::yield_now().await;
        }
    }
}

/// One scan on `r`'s node: the pages taken (to write), the frames freed at once, and
/// whether the hand finished a turn over every process.
fn scan_round(r: &NodeReclaim) -> (Vec<mm::swap::PageOut>, usize, bool) {
    let node = r.node;
    let on_node = move |pfn: Pfn| frames::allocator().node_of(pfn) == Some(node);
    let mut budget = ScanBudget {
        scan: ROUND_PAGES * SCAN_FACTOR,
        take: ROUND_PAGES,
        freed: 0,
    };
    // Cached pages nobody maps go first: they cost no write.
    budget.freed += swap().shrink_cache(ROUND_PAGES * SCAN_FACTOR, frames::mm_frames());
    // Then the round's split between file pages and anonymous ones (vm.swappiness).
    let split = round_split(r);
    let file_freed = if split.file != 0 {
        shrink_file_caches(split.file, &on_node)
    } else {
        0
    };
    STOLEN_FILE.fetch_add(file_freed as u64, Ordering::Relaxed);
    budget.freed += file_freed;
    // What the round still lacks goes to the clock hand: anonymous pages to swap,
    // and the cold page-cache pages mappings hold, unmapped for the caches to drop
    // (with no swap room, only those: the hand then passes over disk file mappings
    // alone).
    let anon = split.anon_after_file(file_freed);
    if anon == 0 {
        // The file pages filled the round.
        return (Vec::new(), budget.freed, !swap().has_room());
    }
    budget.take = anon;
    budget.scan = anon * SCAN_FACTOR;
    let mut pages = Vec::new();
    let processes = crate::proc::all();
    let (mut pid, mut addr) = *r.hand.lock();
    // Each process once, starting from the hand's.
    let start = processes.iter().position(|p| p.pid >= pid).unwrap_or(0);
    let mut lapped = processes.is_empty();
    for i in 0..processes.len() {
        if budget.scan == 0 || budget.take == 0 {
            break;
        }
        let p = &processes[(start + i) % processes.len()];
        if p.pid != pid {
            pid = p.pid;
            addr = 0;
        }
        let before = budget.scan;
        let space = p.address_space();
        let wrapped = space
            .mm()
            .reclaim_scan(&mut addr, &mut budget, &on_node, &mut pages);
        SCANNED.fetch_add((before - budget.scan) as u64, Ordering::Relaxed);
        if wrapped {
            // Next process next time.
            pid = pid.wrapping_add(1);
            addr = 0;
            lapped |= (start + i) % processes.len() == processes.len() - 1;
        }
    }
    *r.hand.lock() = (pid, addr);
    // The file pages the hand just unmapped are the caches' alone now: dropped in
    // this round, up to what it still lacks of its file share (none at swappiness
    // 200, all of the round without swap room).
    let lacking = split
        .file
        .saturating_sub(file_freed)
        .min(anon.saturating_sub(pages.len()));
    if lacking != 0 && has_shrinkers() {
        let unmapped_freed = shrink_file_caches(lacking, &on_node);
        STOLEN_FILE.fetch_add(unmapped_freed as u64, Ordering::Relaxed);
        budget.freed += unmapped_freed;
    }
    // Shared memory counts as anonymous (as in Linux's balance): its pages that no
    // mapping holds any more (the walk above unmaps cold ones) go to swap with what
    // is left of the round, and at least a quarter of it.
    let shmem_budget = budget.take.max(anon / 4);
    pages_from_shmem(r, shmem_budget, &on_node, &mut pages);
    TAKEN_ANON.fetch_add(pages.len() as u64, Ordering::Relaxed);
    (pages, budget.freed, lapped)
}

/// Moves up to `max` pages of shmem objects (tmpfs files, memfds, shared anonymous
/// memory) that only their page cache holds, on `r`'s node, to swap, going round the
/// objects from where the last round stopped (twice at most: the first pass spares
/// pages `read`/`write` referenced); their writes are pushed on `pages`.
fn pages_from_shmem(
    r: &NodeReclaim,
    max: usize,
    on_node: &dyn Fn(Pfn) -> bool,
    pages: &mut Vec<mm::swap::PageOut>,
) {
    let objects = mm::swap::shmem::shmem_objects();
    if objects.is_empty() || max == 0 {
        return;
    }
    let start = r.shmem_hand.load(Ordering::Relaxed) % objects.len();
    let mut taken = 0;
    // A page `read`/`write` referenced since the last pass loses its mark in the
    // first and stays: the cold pages of every object go first. What the round still
    // lacks then comes from the second, which finds those marks cleared, so a round
    // never comes back empty for want of another pass (two empty rounds call the
    // OOM killer).
    for _pass in 0..2 {
        for i in 0..objects.len() {
            if taken >= max || !swap().has_room() {
                return;
            }
            let at = (start + i) % objects.len();
            let got = objects[at].swap_out(swap(), max - taken, on_node, pages);
            taken += got;
            if got != 0 {
                // This object first next time: its cursor goes on where it stopped.
                r.shmem_hand.store(at, Ordering::Relaxed);
            }
        }
    }
}

/// How this round on `r`'s node splits between file and anonymous pages.
fn round_split(r: &NodeReclaim) -> ScanSplit {
    let alloc = frames::allocator();
    let free_pages = alloc.node_stats(r.node).map_or(0, |s| s.free().0);
    let high_pages = alloc.watermarks(r.node).map_or(0, |m| m.high.0);
    scan_split(&ScanInputs {
        swappiness: SWAPPINESS.get() as u32,
        round_pages: ROUND_PAGES,
        swap_room: swap().has_room(),
        file_pages: file_cache_pages(),
        free_pages,
        high_pages,
        desperate: r.dry_laps.load(Ordering::Relaxed) >= 1,
    })
}
