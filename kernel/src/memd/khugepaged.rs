//! `khugepaged`: the kernel task that collapses populated 4 KiB runs of THP-eligible
//! memory into huge pages (`mm::aspace::AddressSpace::collapse_scan`), one pass of
//! `pages_to_scan` pages every `scan_sleep_millisecs`, resuming where the last pass
//! stopped (process by process, address by address); after a failed huge-page
//! allocation it sleeps `alloc_sleep_millisecs`. It idles while THP is `never`.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The pause is slept in pieces this long, so a changed knob takes effect soon.
const SLEEP_PIECE_NS: u64 = 100_000_000;

static STARTED: AtomicBool = AtomicBool::new(false);
static KICKED: AtomicBool = AtomicBool::new(false);
/// Where the next pass starts: the process and the address in it.
static CURSOR_PID: AtomicU64 = AtomicU64::new(0);
static CURSOR_ADDR: AtomicU64 = AtomicU64::new(0);

/// Starts the task (once, at boot).
pub fn start() {
    if !STARTED.swap(true, Ordering::SeqCst) {
        drop(crate::executor::scheduler().spawn(khugepaged()));
    }
}

/// Ends the current pause early (a knob changed).
pub fn kick() {
    KICKED.store(true, Ordering::SeqCst);
}

async fn khugepaged() {
    let thp = crate::mem::aspace::tunables().thp();
    loop {
        let mut pause_ms = thp.scan_sleep_ms();
        if thp.enabled() != mm::thp::ThpEnabled::Never && one_pass(thp.pages_to_scan()) {
            pause_ms = thp.alloc_sleep_ms();
        }
        let deadline = crate::time::now_ns() + pause_ms.saturating_mul(1_000_000);
        KICKED.store(false, Ordering::SeqCst);
        while crate::time::now_ns() < deadline && !KICKED.load(Ordering::SeqCst) {
            let piece = (crate::time::now_ns() + SLEEP_PIECE_NS).min(deadline);
            crate::executor::scheduler().sleep_until(piece).await;
        }
    }
}

/// One pass of `budget` pages from the cursor; true if a huge page could not be
/// allocated.
fn one_pass(budget: u64) -> bool {
    let thp = crate::mem::aspace::tunables().thp();
    let mut processes = crate::proc::all();
    processes.sort_by_key(|p| u64::from(p.pid));
    let mut left = budget;
    let (mut pid, mut addr) = (
        CURSOR_PID.load(Ordering::Relaxed),
        CURSOR_ADDR.load(Ordering::Relaxed),
    );
    let start = processes.partition_point(|p| u64::from(p.pid) < pid);
    for process in &processes[start..] {
        if u64::from(process.pid) != pid {
            (pid, addr) = (u64::from(process.pid), 0);
        }
        let scan = process.address_space().mm().collapse_scan(addr, left);
        left = left.saturating_sub(scan.scanned_pages.max(1));
        addr = scan.next;
        if scan.alloc_failed || left == 0 {
            CURSOR_PID.store(pid, Ordering::Relaxed);
            CURSOR_ADDR.store(addr, Ordering::Relaxed);
            return scan.alloc_failed;
        }
    }
    // Every process seen: the next pass starts from the first again.
    CURSOR_PID.store(0, Ordering::Relaxed);
    CURSOR_ADDR.store(0, Ordering::Relaxed);
    thp.counters.full_scans.fetch_add(1, Ordering::Relaxed);
    false
}
