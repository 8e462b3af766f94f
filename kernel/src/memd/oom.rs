//! The OOM killer and reaper. A user fault that finds no frame and nothing to wait for
//! asks [`out_of_memory`]: it picks a victim with `mm::oom` (the largest process by
//! resident pages and the kernel memory it holds, and `oom_score_adj`, or the faulting one under
//! `vm.oom_kill_allocating_task`), sends it SIGKILL and starts the reaper, and the
//! faulting thread waits for the reaper before it retries. One kill is in flight at a
//! time: faults that run out meanwhile wait for the same one.
//!
//! The reaper is a kernel task: a killed process normally frees its memory itself as
//! its threads leave (each ends its wait on the signal), and the reaper then just
//! reports; if the victim has not exited within [`REAP_AFTER_MS`], the reaper tears its
//! address space down itself so the memory comes back anyway.

use crate::mem::frames;
use crate::tunable::{keep, key, Key, KeyKind};
use crate::{kprintln, proc, proc::Process};
use alloc::{sync::Arc, vec::Vec};
use core::sync::atomic::Ordering;
use errno::{Errno, SysResult};
use mm::{
    fault::Completion,
    oom::{choose_victim, Candidate, OOM_SCORE_ADJ_MAX, OOM_SCORE_ADJ_MIN},
};
use security::Privilege;
use spin::Mutex;

/// How long a victim has to exit before the reaper takes its memory.
pub const REAP_AFTER_MS: u64 = 1000;

/// The kill in flight: the reaper completes it.
static IN_FLIGHT: Mutex<Option<Arc<Completion>>> = Mutex::new(None);

/// Processes the killer has killed (`oom_kill` in `/proc/vmstat`).
static KILLS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Processes the killer has killed since boot.
pub fn kills() -> u64 {
    KILLS.load(Ordering::Relaxed)
}

/// What the faulting thread does after asking the killer.
pub enum OomOutcome {
    /// Another process was killed: wait for its memory, then retry.
    Wait(Arc<Completion>),
    /// The faulting process itself is the victim (SIGKILL is pending).
    SelfKilled,
    /// Nothing may be killed.
    NoVictim,
}

/// The killer's view of `p`.
pub fn candidate(p: &Process) -> Candidate {
    let space = p.address_space();
    Candidate {
        pid: p.pid,
        rss_pages: space.mm().resident_pages(),
        kernel_pages: space.mm().kernel_bytes().div_ceil(4096),
        adj: p.oom_score_adj.load(Ordering::Relaxed),
        killable: p.pid != 1
            && !p.exiting.load(Ordering::SeqCst)
            && !p.zombie.load(Ordering::SeqCst),
    }
}

/// `current` ran out of memory in a fault: kill a victim (or join the kill in flight).
pub fn out_of_memory(current: &Arc<Process>) -> OomOutcome {
    let mut in_flight = IN_FLIGHT.lock();
    if let Some(done) = in_flight.as_ref().filter(|d| !d.is_complete()) {
        return OomOutcome::Wait(done.clone());
    }
    // The pre-zeroed huge pages go back first: if there were any, retry before
    // killing (a completed wait retries at once).
    if crate::mem::thp_pool::drain() > 0 {
        let done = Completion::new();
        done.complete();
        return OomOutcome::Wait(done);
    }
    let total = frames::allocator().total_pages().0;
    let processes = proc::all();
    let candidates: Vec<Candidate> = processes.iter().map(|p| candidate(p)).collect();
    let kill_allocating = OOM_KILL_ALLOCATING_TASK.get() == 1;
    let Some((victim, c)) = choose_victim(&candidates, current.pid, kill_allocating, total)
        .and_then(|pid| {
            let i = processes.iter().position(|p| p.pid == pid)?;
            Some((processes[i].clone(), candidates[i]))
        })
    else {
        return OomOutcome::NoVictim;
    };
    KILLS.fetch_add(1, Ordering::Relaxed);
    kprintln!(
        "Out of memory: Killed process {} ({}) anon-rss:{}kB pgtables:{}kB oom_score_adj:{}{}",
        victim.pid,
        victim.name.lock(),
        c.rss_pages * 4,
        c.kernel_pages * 4,
        c.adj,
        if kill_allocating {
            " (allocating task)"
        } else {
            ""
        }
    );
    // Linux prints its Mem-Info here; the free counts tell a real shortage from one
    // where memory is still on its way back.
    let (_, free, low, _) = mm::frame::report::totals(frames::allocator());
    kprintln!(
        "oom: MemFree {} kB (low watermarks {} kB)",
        free.0 * 4,
        low.0 * 4
    );
    proc::signal::send_to_process(&victim, proc::signal::SIGKILL);
    let done = Completion::new();
    *in_flight = Some(done.clone());
    drop(crate::executor::scheduler().spawn(reap(victim.clone(), done.clone())));
    if victim.pid == current.pid {
        OomOutcome::SelfKilled
    } else {
        OomOutcome::Wait(done)
    }
}

/// The OOM reaper: waits for the victim to exit, takes its memory if it does not.
async fn reap(victim: Arc<Process>, done: Arc<Completion>) {
    let deadline = crate::time::now_ns() + REAP_AFTER_MS * 1_000_000;
    while !victim.zombie.load(Ordering::SeqCst) && crate::time::now_ns() < deadline {
        let tick = crate::time::now_ns() + 2_000_000;
        crate::executor::scheduler().sleep_until(tick).await;
    }
    if !victim.zombie.load(Ordering::SeqCst) {
        victim.address_space().mm().teardown();
        kprintln!(
            "oom_reaper: reaped process {} ({})",
            victim.pid,
            victim.name.lock()
        );
    }
    done.complete();
}

/// A write of `text` to `target`'s `/proc/<pid>/oom_score_adj` by `caller` (who opened
/// it with PROCESS_SET_QUOTA): EINVAL outside -1000..=1000; lowering the value (opting
/// out of being chosen) needs SeIncreaseQuotaPrivilege, else EACCES.
pub fn write_score_adj(caller: &Process, target: &Process, text: &[u8]) -> SysResult<()> {
    let text = core::str::from_utf8(text).map_err(|_| Errno::EINVAL)?;
    let text = text.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\0');
    let value: i32 = text.parse().map_err(|_| Errno::EINVAL)?;
    if !(OOM_SCORE_ADJ_MIN..=OOM_SCORE_ADJ_MAX).contains(&value) {
        return Err(Errno::EINVAL);
    }
    let current = target.oom_score_adj.load(Ordering::Relaxed);
    if value < current
        && !caller
            .token
            .read()
            .has_privilege(Privilege::SeIncreaseQuotaPrivilege)
    {
        return Err(Errno::EACCES);
    }
    target.oom_score_adj.store(value, Ordering::Relaxed);
    Ok(())
}

/// `/proc/<pid>/oom_score`.
pub fn score(p: &Process) -> u64 {
    mm::oom::oom_score(&candidate(p), frames::allocator().total_pages().0)
}

/// `vm.oom_kill_allocating_task` (0).
pub static OOM_KILL_ALLOCATING_TASK: Key = key(
    "vm.oom_kill_allocating_task",
    &["/proc/sys/vm/oom_kill_allocating_task"],
    KeyKind::Int { min: 0, max: 1 },
    0,
    keep,
);
