//! Task limits, as Linux keeps them: pids are reused below `kernel.pid_max` (a bitmap,
//! allocated a page at a time, searched from the last pid given out and wrapping to
//! [`RESERVED_PIDS`]); the tasks of the whole system are capped by `kernel.threads-max`;
//! the tasks of one user by its `RLIMIT_NPROC` (unless it holds SeIncreaseQuotaPrivilege
//! or SeTcbPrivilege, Linux's CAP_SYS_RESOURCE and CAP_SYS_ADMIN). Every task, process
//! or thread, holds a [`TaskSlot`] from [`reserve`]: a thread until it exits, a process's
//! first thread until the process is reaped (a zombie keeps its pid and still counts).
//! Creating one past a limit is EAGAIN, never a heap exhaustion.

use super::Pid;
use crate::tunable::{keep, key, Key, KeyKind};
use alloc::{collections::BTreeMap, vec::Vec};
use errno::{Errno, SysResult};
use spin::Mutex;

/// `PID_MAX_LIMIT` on 64-bit Linux: the largest `kernel.pid_max`.
pub const PID_MAX_LIMIT: u32 = 4 * 1024 * 1024;
/// `PID_MAX_DEFAULT`.
pub const PID_MAX_DEFAULT: u32 = 32768;
/// `PIDS_PER_CPU_DEFAULT`: `pid_max` is at least this many per CPU.
pub const PIDS_PER_CPU_DEFAULT: u32 = 1024;
/// `RESERVED_PIDS`: after wrapping, pids start again here.
pub const RESERVED_PIDS: u32 = 300;
/// `MIN_THREADS`: the smallest `kernel.threads-max`.
pub const MIN_THREADS: u64 = 20;
/// `FUTEX_TID_MASK`: the largest `kernel.threads-max`.
pub const MAX_THREADS: u64 = 0x3fff_ffff;
/// `THREAD_SIZE` on x86_64 Linux (a kernel stack): `threads-max` is RAM over eight of them.
pub const THREAD_SIZE: u64 = 16 * 1024;
/// `RLIMIT_NPROC`.
pub const RLIMIT_NPROC: usize = 6;
/// `RLIMIT_SIGPENDING`.
pub const RLIMIT_SIGPENDING: usize = 11;

/// Pids per bitmap page (4 KiB of bits).
const PIDS_PER_PAGE: u32 = 4096 * 8;
const WORDS_PER_PAGE: usize = 4096 / 8;

/// Linux's default `kernel.threads-max` for `ram_bytes` of memory
/// (`totalram_pages / (8 * THREAD_SIZE / PAGE_SIZE)`, clamped).
pub fn default_threads_max(ram_bytes: u64) -> u64 {
    (ram_bytes / (8 * THREAD_SIZE)).clamp(MIN_THREADS, MAX_THREADS)
}

/// Linux's default `kernel.pid_max` for `cpus` CPUs.
pub fn default_pid_max(cpus: u32) -> u32 {
    PID_MAX_DEFAULT
        .max(PIDS_PER_CPU_DEFAULT.saturating_mul(cpus))
        .min(PID_MAX_LIMIT)
}

/// The pids in use: one bit each.
struct PidMap {
    pages: Vec<Option<Vec<u64>>>,
    /// The last pid given out (the search starts after it).
    last: Pid,
}

impl PidMap {
    fn place(pid: Pid) -> (usize, usize, u32) {
        let page = (pid / PIDS_PER_PAGE) as usize;
        let within = (pid % PIDS_PER_PAGE) as usize;
        (page, within / 64, (within % 64) as u32)
    }

    /// Marks `pid` used (its page allocated on first use: ENOMEM if the heap is full).
    fn set(&mut self, pid: Pid) -> SysResult<()> {
        let (page, word, bit) = Self::place(pid);
        if self.pages.len() <= page {
            self.pages
                .try_reserve(page + 1 - self.pages.len())
                .map_err(|_| Errno::ENOMEM)?;
            self.pages.resize(page + 1, None);
        }
        if self.pages[page].is_none() {
            let mut words = Vec::new();
            words
                .try_reserve_exact(WORDS_PER_PAGE)
                .map_err(|_| Errno::ENOMEM)?;
            words.resize(WORDS_PER_PAGE, 0);
            self.pages[page] = Some(words);
        }
        if let Some(p) = self.pages[page].as_mut() {
            p[word] |= 1 << bit;
        }
        Ok(())
    }

    fn clear(&mut self, pid: Pid) {
        let (page, word, bit) = Self::place(pid);
        if let Some(p) = self.pages.get_mut(page).and_then(Option::as_mut) {
            p[word] &= !(1 << bit);
        }
    }

    /// The first free pid in `[lo, hi)`.
    fn first_free(&self, lo: Pid, hi: Pid) -> Option<Pid> {
        let mut pid = lo;
        while pid < hi {
            let (page, word, bit) = Self::place(pid);
            match self.pages.get(page).and_then(Option::as_ref) {
                None => return Some(pid),
                Some(p) => {
                    let free = !p[word] & (u64::MAX << bit);
                    if free != 0 {
                        let found = pid - bit + free.trailing_zeros();
                        return (found < hi).then_some(found);
                    }
                    pid = pid - bit + 64;
                }
            }
        }
        None
    }

    /// A free pid below `pid_max`, searching after the last one and wrapping to
    /// [`RESERVED_PIDS`] (to 1 before the first wrap); EAGAIN when none is left.
    fn alloc(&mut self, pid_max: Pid) -> SysResult<Pid> {
        let start = self.last.saturating_add(1);
        let wrap_to = if start > RESERVED_PIDS {
            RESERVED_PIDS
        } else {
            1
        };
        let pid = self
            .first_free(start.max(1), pid_max)
            .or_else(|| self.first_free(wrap_to, start.min(pid_max)))
            .ok_or(Errno::EAGAIN)?;
        self.set(pid)?;
        self.last = pid;
        Ok(pid)
    }
}

/// Everything the limits count, under one lock.
struct Tasks {
    pids: PidMap,
    /// Tasks in the system (Linux's `nr_threads`).
    nr_tasks: u64,
    /// Tasks per real uid (what RLIMIT_NPROC limits).
    per_user: BTreeMap<u32, u64>,
}

static TASKS: Mutex<Tasks> = Mutex::new(Tasks {
    pids: PidMap {
        pages: Vec::new(),
        last: 0,
    },
    nr_tasks: 0,
    per_user: BTreeMap::new(),
});

/// A task's pid and its place in the counts; dropping it gives both back.
#[derive(Debug)]
pub struct TaskSlot {
    pid: Pid,
    uid: u32,
}

impl TaskSlot {
    /// The pid (or tid).
    pub fn pid(&self) -> Pid {
        self.pid
    }
}

impl Drop for TaskSlot {
    fn drop(&mut self) {
        let mut t = TASKS.lock();
        t.pids.clear(self.pid);
        t.nr_tasks = t.nr_tasks.saturating_sub(1);
        if let Some(n) = t.per_user.get_mut(&self.uid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                t.per_user.remove(&self.uid);
            }
        }
    }
}

/// Who is asking for a task, for the per-user limit.
#[derive(Clone, Copy, Debug)]
pub struct Requester {
    /// The real uid the task will run as.
    pub uid: u32,
    /// Its `RLIMIT_NPROC` soft limit.
    pub nproc_limit: u64,
    /// It holds SeIncreaseQuotaPrivilege or SeTcbPrivilege (RLIMIT_NPROC does not apply).
    pub exempt: bool,
}

/// A pid and a place for one more task of `who`: EAGAIN past `kernel.threads-max`, past
/// the user's RLIMIT_NPROC, or with no pid left below `kernel.pid_max`.
pub fn reserve(who: Requester) -> SysResult<TaskSlot> {
    let threads_max = THREADS_MAX.get();
    let pid_max = PID_MAX.get() as Pid;
    let mut t = TASKS.lock();
    if t.nr_tasks >= threads_max {
        return Err(Errno::EAGAIN);
    }
    let user_tasks = t.per_user.get(&who.uid).copied().unwrap_or(0);
    if user_tasks >= who.nproc_limit && !who.exempt {
        return Err(Errno::EAGAIN);
    }
    let pid = t.pids.alloc(pid_max)?;
    t.nr_tasks += 1;
    *t.per_user.entry(who.uid).or_insert(0) += 1;
    Ok(TaskSlot { pid, uid: who.uid })
}

/// Tasks in the system now, and the last pid given out (`/proc/loadavg`).
pub fn nr_tasks_and_last_pid() -> (u64, Pid) {
    let t = TASKS.lock();
    (t.nr_tasks, t.pids.last)
}

/// `kernel.threads-max`: most tasks (processes and threads) in the system; clone and
/// fork fail with EAGAIN at it. 0 here means Linux's formula from RAM
/// (`proc::limits::default_threads_max`), stored at boot.
pub static THREADS_MAX: Key = key(
    "kernel.threads-max",
    &["/proc/sys/kernel/threads-max"],
    KeyKind::Int {
        min: MIN_THREADS,
        max: MAX_THREADS,
    },
    0,
    keep,
);
/// `kernel.pid_max`: pids (and tids) stay below it; clone fails with EAGAIN when none
/// is left. 0 here means Linux's default (32768, or 1024 per CPU), stored at boot.
pub static PID_MAX: Key = key(
    "kernel.pid_max",
    &["/proc/sys/kernel/pid_max"],
    KeyKind::Int {
        min: RESERVED_PIDS as u64 + 1,
        max: PID_MAX_LIMIT as u64,
    },
    0,
    keep,
);
