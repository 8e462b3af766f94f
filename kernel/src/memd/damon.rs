//! DAMON in the kernel: `mm.damon.nr_kdamonds` kdamonds, each monitoring one process
//! with `mm::damon` while its `state` is `on`, sampling every [`SAMPLE_MS`] and
//! publishing every [`AGGREGATE_MS`]. Control files follow Linux's sysfs layout
//! (`/sys/kernel/mm/damon/admin/kdamonds/N/state` and
//! `.../N/contexts/0/targets/0/pid_target`) and are written only by a TCB daemon
//! (SeTcbPrivilege); the result is `/proc/<pid>/damon` (`start-end nr_accesses age` per
//! region of the last aggregation), gated like smaps.
//!
//! DAMOS pageout: with the registry key `mm.damon.pageout_min_age` at N > 0, each
//! kdamond pages out (as `MADV_PAGEOUT` does) every region of its target that went
//! unaccessed for at least N aggregations; a TCB daemon sets it through the registry.

use crate::proc;
use crate::tunable::{keep, key, Key, KeyKind};
use alloc::{format, string::String, sync::Arc, vec::Vec};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use errno::{Errno, SysResult};
use mm::damon::{Limits, Monitor, Region};
use spin::Mutex;

/// Sampling interval.
pub const SAMPLE_MS: u64 = 5;
/// Aggregation interval.
pub const AGGREGATE_MS: u64 = 100;

/// `mm.damon.pageout_min_age`: aggregations a region must go unaccessed before the
/// kdamond watching it pages it out (0: no pageout scheme, the default).
pub static PAGEOUT_MIN_AGE: Key = key(
    "mm.damon.pageout_min_age",
    &["/sys/kernel/mm/damon/admin/kdamonds/pageout_min_age"],
    KeyKind::Int {
        min: 0,
        max: 1 << 20,
    },
    0,
    keep,
);

/// Pages the DAMOS pageout scheme sent to swap (`/proc/vmstat` `damos_pageout`).
static PAGED_OUT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Pages the pageout scheme has taken so far.
pub fn paged_out() -> u64 {
    PAGED_OUT.load(Ordering::Relaxed)
}

/// One kdamond's settings and last result.
#[derive(Default)]
struct Kdamond {
    target: AtomicU32,
    running: AtomicBool,
    report: Mutex<Option<(u32, Vec<Region>)>>,
}

static KDAMONDS: Mutex<Vec<Arc<Kdamond>>> = Mutex::new(Vec::new());

/// Applies `nr_kdamonds`: creates or removes kdamonds (removed ones stop).
pub fn set_count(n: u64) {
    let mut list = KDAMONDS.lock();
    while list.len() > n as usize {
        if let Some(k) = list.pop() {
            k.running.store(false, Ordering::SeqCst);
        }
    }
    while list.len() < n as usize {
        list.push(Arc::new(Kdamond::default()));
    }
}

/// A control file: which kdamond, and which of its files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// `kdamonds/N/state`.
    State(usize),
    /// `kdamonds/N/contexts/0/targets/0/pid_target`.
    PidTarget(usize),
}

/// The control file at `path`, if it names an existing kdamond's.
pub fn control(path: &str) -> Option<Control> {
    let rest = path.strip_prefix("/sys/kernel/mm/damon/admin/kdamonds/")?;
    let (index, file) = rest.split_once('/')?;
    let index: usize = index.parse().ok()?;
    if index >= KDAMONDS.lock().len() {
        return None;
    }
    match file {
        "state" => Some(Control::State(index)),
        "contexts/0/targets/0/pid_target" => Some(Control::PidTarget(index)),
        _ => None,
    }
}

fn kdamond(index: usize) -> SysResult<Arc<Kdamond>> {
    KDAMONDS.lock().get(index).cloned().ok_or(Errno::ENOENT)
}

/// A control file's text.
pub fn read_control(c: Control) -> SysResult<String> {
    Ok(match c {
        Control::State(i) => {
            let on = kdamond(i)?.running.load(Ordering::SeqCst);
            String::from(if on { "on\n" } else { "off\n" })
        }
        Control::PidTarget(i) => format!("{}\n", kdamond(i)?.target.load(Ordering::SeqCst)),
    })
}

/// A write to a control file (the caller checked the privilege).
pub fn write_control(c: Control, text: &str) -> SysResult<()> {
    let text = text.trim_matches(|ch: char| ch.is_ascii_whitespace() || ch == '\0');
    match c {
        Control::PidTarget(i) => {
            let pid: u32 = text.parse().map_err(|_| Errno::EINVAL)?;
            let k = kdamond(i)?;
            if k.running.load(Ordering::SeqCst) {
                return Err(Errno::EBUSY);
            }
            k.target.store(pid, Ordering::SeqCst);
            Ok(())
        }
        Control::State(i) => {
            let k = kdamond(i)?;
            match text {
                "on" => {
                    let pid = k.target.load(Ordering::SeqCst);
                    let target = proc::lookup(pid).ok_or(Errno::EINVAL)?;
                    if !k.running.swap(true, Ordering::SeqCst) {
                        drop(crate::executor::scheduler().spawn(run(k.clone(), target)));
                    }
                    Ok(())
                }
                "off" => {
                    k.running.store(false, Ordering::SeqCst);
                    Ok(())
                }
                _ => Err(Errno::EINVAL),
            }
        }
    }
}

/// `/proc/<pid>/damon`: the last aggregation of every kdamond watching `pid`.
pub fn report(pid: u32) -> String {
    let mut out = String::new();
    for k in KDAMONDS.lock().iter() {
        if let Some((target, regions)) = k.report.lock().as_ref() {
            if *target == pid {
                for r in regions {
                    out.push_str(&format!(
                        "{:x}-{:x} {} {}\n",
                        r.start, r.end, r.nr_accesses, r.age
                    ));
                }
            }
        }
    }
    out
}

/// The kdamond task: samples `target` until stopped or the target exits.
async fn run(k: Arc<Kdamond>, target: Arc<proc::Process>) {
    let ranges = |p: &proc::Process| -> Vec<(u64, u64)> {
        p.address_space()
            .mm()
            .vmas()
            .iter()
            .map(|v| (v.start(), v.end()))
            .collect()
    };
    let initial = ranges(&target);
    // Only accesses made while monitored count.
    let space = target.address_space();
    for &(start, end) in &initial {
        space.mm().clear_accessed(start, end);
    }
    drop(space);
    let mut monitor = Monitor::new(
        &initial,
        Limits {
            min_regions: 10,
            max_regions: 200,
        },
    );
    let mut next_aggregation = crate::time::now_ns() + AGGREGATE_MS * 1_000_000;
    while k.running.load(Ordering::SeqCst) && !target.zombie.load(Ordering::SeqCst) {
        let space = target.address_space();
        monitor.sample(&mut |page| space.mm().sample_accessed(page));
        drop(space);
        let now = crate::time::now_ns();
        if now >= next_aggregation {
            monitor.aggregate(2);
            *k.report.lock() = Some((target.pid, monitor.report().to_vec()));
            next_aggregation = now + AGGREGATE_MS * 1_000_000;
            apply_pageout_scheme(&target, monitor.report());
        }
        let wake = crate::time::now_ns() + SAMPLE_MS * 1_000_000;
        crate::executor::scheduler().sleep_until(wake).await;
    }
    k.running.store(false, Ordering::SeqCst);
}

/// The DAMOS pageout scheme over one aggregation's regions: cold long enough, out.
fn apply_pageout_scheme(target: &proc::Process, regions: &[Region]) {
    let min_age = PAGEOUT_MIN_AGE.get();
    if min_age == 0 {
        return;
    }
    let space = target.address_space();
    for r in regions
        .iter()
        .filter(|r| r.nr_accesses == 0 && u64::from(r.age) >= min_age)
    {
        let n = crate::memd::swap::page_out(&space, r.start, r.end);
        PAGED_OUT.fetch_add(n as u64, Ordering::Relaxed);
    }
}
