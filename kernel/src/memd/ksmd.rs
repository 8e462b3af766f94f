//! `ksmd`: the kernel task that runs KSM passes (`mm::ksm`) over every process while
//! `/sys/kernel/mm/ksm/run` is 1, one pass every [`SLEEP_MS`]. It exists only while
//! KSM runs: writing 1 starts it, writing 0 lets it finish its pass and end, writing 2
//! stops it and unmerges every merged page at once.

use crate::mem::frames::mm_frames;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Pause between passes (Linux's `sleep_millisecs` default).
pub const SLEEP_MS: u64 = 20;

static MODE: AtomicU64 = AtomicU64::new(0);
static TASK_ALIVE: AtomicBool = AtomicBool::new(false);

/// Applies a `run` value: 0 stop, 1 run, 2 stop and unmerge everything.
pub fn set_run(mode: u64) {
    MODE.store(mode, Ordering::SeqCst);
    match mode {
        1 => start_task(),
        2 => unmerge_all(),
        _ => {}
    }
}

/// The `/sys/kernel/mm/ksm` statistics.
pub fn stats() -> mm::ksm::KsmStats {
    crate::mem::aspace::tunables().ksm().stats(mm_frames())
}

fn start_task() {
    if !TASK_ALIVE.swap(true, Ordering::SeqCst) {
        drop(crate::executor::scheduler().spawn(ksmd()));
    }
}

async fn ksmd() {
    loop {
        while MODE.load(Ordering::SeqCst) == 1 {
            one_pass();
            let deadline = crate::time::now_ns() + SLEEP_MS * 1_000_000;
            crate::executor::scheduler().sleep_until(deadline).await;
        }
        TASK_ALIVE.store(false, Ordering::SeqCst);
        // A `run = 1` between the loop's last check and the store above found the task
        // alive and did not start another: carry on in its place.
        if MODE.load(Ordering::SeqCst) != 1 || TASK_ALIVE.swap(true, Ordering::SeqCst) {
            return;
        }
    }
}

fn one_pass() {
    let ksm = crate::mem::aspace::tunables().ksm();
    ksm.begin_pass();
    for process in crate::proc::all() {
        process.address_space().mm().ksm_scan();
    }
    ksm.end_pass(mm_frames());
}

fn unmerge_all() {
    for process in crate::proc::all() {
        process
            .address_space()
            .mm()
            .ksm_unmerge(0, mm::aspace::TASK_SIZE);
    }
    crate::mem::aspace::tunables()
        .ksm()
        .release_unused(mm_frames());
}
