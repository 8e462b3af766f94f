//! Processes and threads. A process owns an address space, a file table, a token and a
//! security descriptor; a thread is a task on some CPU's executor running the loop in
//! `syscall::entry`. The process table maps pids to processes; it is touched on fork, exit and
//! lookup, never on the fault or syscall fast paths.

#![deny(unsafe_code)]

pub mod controls;
pub mod exec;
pub mod files;
pub mod futex;
pub mod itimer;
pub mod limits;
pub mod rusage;
pub mod shutdown;
pub mod signal;
pub mod thread;
pub mod thread_exit;
pub mod vdso;
pub mod wait;

use crate::{arch::percpu, mem::aspace::AddressSpace};
use alloc::{collections::BTreeMap, string::String, sync::Arc, vec::Vec};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};
use errno::{Errno, SysResult};
use security::{IntegrityLevel, SecurityDescriptor, Token};
use spin::{Mutex, RwLock};

/// A process id (also used for thread ids: they share one number space, as in Linux).
pub type Pid = u32;

/// Resource limits (`RLIMIT_*`): soft and hard values.
#[derive(Clone, Copy, Debug)]
pub struct Rlimit {
    /// Soft limit.
    pub cur: u64,
    /// Hard limit.
    pub max: u64,
}

/// Number of `RLIMIT_*` resources.
pub const RLIM_NLIMITS: usize = 16;
/// `RLIM_INFINITY`.
pub const RLIM_INFINITY: u64 = u64::MAX;

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// `exit(code)`.
    Exited(u8),
    /// Killed by a signal.
    Signaled(u8),
}

impl ExitStatus {
    /// The `wait4` status word.
    pub fn wait_status(self) -> i32 {
        match self {
            ExitStatus::Exited(code) => i32::from(code) << 8,
            ExitStatus::Signaled(sig) => i32::from(sig),
        }
    }

    /// The shell-style status (128 + signal for a signal death).
    pub fn shell_status(self) -> i32 {
        match self {
            ExitStatus::Exited(code) => i32::from(code),
            ExitStatus::Signaled(sig) => 128 + i32::from(sig),
        }
    }
}

/// A process.
pub struct Process {
    /// Process id (= tid of its first thread).
    pub pid: Pid,
    /// Parent pid (re-pointed to 1 when the parent exits first).
    pub ppid: AtomicU32,
    /// Process group id.
    pub pgid: AtomicU32,
    /// Session id.
    pub sid: AtomicU32,
    /// Program name (for reports).
    pub name: Mutex<String>,
    /// The address space; replaced by execve (through `replace_address_space`).
    pub aspace: RwLock<Arc<AddressSpace>>,
    /// The id of `aspace`, readable without touching its lock or count (futex keys).
    aspace_id: AtomicU64,
    /// Open files.
    pub files: Mutex<files::FileTable>,
    /// Working directory and umask.
    pub fs: Mutex<crate::vfs::FsContext>,
    /// The canonical path of the program it runs (`/proc/<pid>/exe`).
    pub exe: Mutex<String>,
    /// The security token all its threads run with.
    pub token: RwLock<Arc<Token>>,
    /// Who may do what to this process.
    pub sd: RwLock<SecurityDescriptor>,
    /// Signal dispositions.
    pub signals: Mutex<signal::Dispositions>,
    /// Threads still running.
    pub live_threads: AtomicU32,
    /// Set once the process is going away (exit_group or a fatal signal).
    pub exiting: AtomicBool,
    /// Exit status once `exiting` (wait status encoded).
    exit_status: Mutex<Option<ExitStatus>>,
    /// Children, including zombies not yet reaped.
    pub children: Mutex<Vec<Arc<Process>>>,
    /// Woken when a child exits (wait4).
    pub child_exited: wait::WaitQueue,
    /// Woken when one of its threads exits (execve waits for the others).
    pub thread_exited: wait::WaitQueue,
    /// Woken when the process becomes a zombie and when it is reaped (pidfd pollers).
    pub exit_waiters: wait::WaitQueue,
    /// The process has exited and released its resources (a zombie until reaped).
    pub zombie: AtomicBool,
    /// Threads, for signals and exit.
    pub threads: Mutex<Vec<Arc<thread::Thread>>>,
    /// Resource limits.
    pub rlimits: Mutex<[Rlimit; RLIM_NLIMITS]>,
    /// Exit code chosen by exit_group (before the last thread finishes).
    pub group_exit_code: AtomicI32,
    /// Threads ever started.
    pub threads_started: AtomicU32,
    /// CPUs any of its threads ran on (bit per CPU).
    pub cpus_used: AtomicU64,
    /// `oom_score_adj` (-1000..=1000; inherited by children, kept across execve).
    pub oom_score_adj: AtomicI32,
    /// What `prctl` set.
    pub controls: controls::Controls,
    /// Set once the process has let go of the address space it was created with (its
    /// first execve or its exit): what a `CLONE_VFORK` parent waits for.
    vfork_released: AtomicBool,
    /// Woken when `vfork_released` is set.
    pub vfork_done: wait::WaitQueue,
    /// The pid's slot in the task limits, held until the process is reaped.
    task_slot: Mutex<Option<limits::TaskSlot>>,
    /// `ITIMER_REAL` (setitimer, alarm): SIGALRM at each expiry.
    pub real_timer: itimer::RealTimer,
    /// `ITIMER_VIRTUAL` and `ITIMER_PROF`, run down by the CPU time its threads use.
    pub cpu_timers: itimer::CpuTimers,
    /// CPU time and faults of its exited threads and reaped children (getrusage).
    pub usage: rusage::ProcessUsage,
    /// The `membarrier` REGISTER commands it issued (their command bits); kept by
    /// fork, cleared by execve.
    pub membarrier_registered: AtomicU32,
}

impl Process {
    /// The current address space (a clone of the `Arc`, so the lock is not held).
    pub fn address_space(&self) -> Arc<AddressSpace> {
        self.aspace.read().clone()
    }

    /// The current address space's id.
    pub fn address_space_id(&self) -> u64 {
        self.aspace_id.load(Ordering::Acquire)
    }

    /// Installs `new` (execve, exit); returns the old address space and whether this
    /// process was its last user (a `CLONE_VM` sibling may still run in it).
    pub fn replace_address_space(&self, new: Arc<AddressSpace>) -> (Arc<AddressSpace>, bool) {
        new.add_user();
        // membarrier registrations belong to the address space being left.
        self.membarrier_registered.store(0, Ordering::SeqCst);
        let mut slot = self.aspace.write();
        self.aspace_id.store(new.id(), Ordering::Release);
        let old = core::mem::replace(&mut *slot, new);
        drop(slot);
        let last = old.drop_user();
        (old, last)
    }

    /// The integrity level of this process (from its token).
    pub fn integrity(&self) -> IntegrityLevel {
        self.token.read().integrity()
    }

    /// Records `status` as the process's exit status unless one is already set.
    pub(super) fn set_exit_status_once(&self, status: ExitStatus) {
        let mut slot = self.exit_status.lock();
        if slot.is_none() {
            *slot = Some(status);
        }
    }

    /// Starts the exit of the whole process with `status`: every thread stops at its next
    /// kernel entry or wake-up.
    pub fn begin_exit(&self, status: ExitStatus) {
        self.set_exit_status_once(status);
        self.exiting.store(true, Ordering::SeqCst);
        for t in self.threads.lock().iter() {
            t.interrupt();
        }
    }

    /// The exit status, once set.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        *self.exit_status.lock()
    }

    /// The process no longer runs in the address space it was created with (execve or
    /// exit): a `CLONE_VFORK` parent may go on.
    pub fn release_vfork(&self) {
        if !self.vfork_released.swap(true, Ordering::SeqCst) {
            self.vfork_done.wake_all();
        }
    }

    /// Whether [`Process::release_vfork`] happened.
    pub fn vfork_released(&self) -> bool {
        self.vfork_released.load(Ordering::SeqCst)
    }
}

/// All live and zombie processes.
static PROCESSES: RwLock<BTreeMap<Pid, Arc<Process>>> = RwLock::new(BTreeMap::new());

/// A pid or tid for one more task of `process` (EAGAIN past the task limits, see
/// [`limits`]).
pub fn reserve_task(process: &Process) -> SysResult<limits::TaskSlot> {
    let token = process.token.read();
    let who = limits::Requester {
        uid: token.uid(),
        nproc_limit: process.rlimits.lock()[limits::RLIMIT_NPROC].cur,
        exempt: token.has_privilege(security::Privilege::SeIncreaseQuotaPrivilege)
            || token.has_privilege(security::Privilege::SeTcbPrivilege),
    };
    drop(token);
    limits::reserve(who)
}

/// Looks a process up.
pub fn lookup(pid: Pid) -> Option<Arc<Process>> {
    PROCESSES.read().get(&pid).cloned()
}

/// Finds a thread by tid in any process (threads share the pid space): the process
/// whose pid is `tid` first (the tid of a main thread), then every process. ESRCH if
/// there is none.
pub fn thread_by_id(tid: u64) -> SysResult<Arc<thread::Thread>> {
    let tid = Pid::try_from(tid).map_err(|_| Errno::ESRCH)?;
    let in_process = |p: &Process| p.threads.lock().iter().find(|t| t.tid == tid).cloned();
    lookup(tid)
        .and_then(|p| in_process(&p))
        .or_else(|| all().iter().find_map(|p| in_process(p)))
        .ok_or(Errno::ESRCH)
}

/// The process a pid names for kill, prlimit64 and process_vm_readv/writev: as on
/// Linux, the tid of any of its threads names it too. ESRCH if there is none.
pub fn process_by_id(id: u64) -> SysResult<Arc<Process>> {
    let pid = Pid::try_from(id).map_err(|_| Errno::ESRCH)?;
    match lookup(pid) {
        Some(process) => Ok(process),
        None => thread_by_id(id).map(|t| t.process.clone()),
    }
}

/// Removes a reaped process from the table; its pid is free again.
pub fn remove(pid: Pid) {
    let process = PROCESSES.write().remove(&pid);
    if let Some(p) = process {
        drop(p.task_slot.lock().take());
        p.exit_waiters.wake_all();
    }
}

/// The limits of the first process (every other inherits its parent's): Linux's, with
/// RLIMIT_NPROC and RLIMIT_SIGPENDING at half of `kernel.threads-max`, as `fork_init`
/// sets them.
pub fn default_rlimits() -> [Rlimit; RLIM_NLIMITS] {
    let inf = Rlimit {
        cur: RLIM_INFINITY,
        max: RLIM_INFINITY,
    };
    let mut l = [inf; RLIM_NLIMITS];
    l[3] = Rlimit {
        cur: 8 << 20,
        max: RLIM_INFINITY,
    }; // RLIMIT_STACK
    l[4] = Rlimit {
        cur: 0,
        max: RLIM_INFINITY,
    }; // RLIMIT_CORE
    l[7] = Rlimit {
        cur: 1024,
        max: 4096,
    }; // RLIMIT_NOFILE
    l[8] = Rlimit {
        cur: 8 << 20,
        max: 8 << 20,
    }; // RLIMIT_MEMLOCK
    let half = limits::THREADS_MAX.get() / 2;
    let tasks = Rlimit {
        cur: half,
        max: half,
    };
    l[limits::RLIMIT_NPROC] = tasks;
    l[limits::RLIMIT_SIGPENDING] = tasks;
    l
}

/// What a new process starts with.
pub struct NewProcess {
    /// Its pid's slot (the pid is the slot's).
    pub slot: limits::TaskSlot,
    /// Parent pid (0: none).
    pub ppid: Pid,
    /// Program name.
    pub name: String,
    /// Address space.
    pub aspace: Arc<AddressSpace>,
    /// Open files.
    pub files: files::FileTable,
    /// Working directory and umask (the parent's, on fork).
    pub fs: crate::vfs::FsContext,
    /// The program's canonical path.
    pub exe: String,
    /// Security token.
    pub token: Arc<Token>,
    /// Resource limits (the parent's, on fork).
    pub rlimits: [Rlimit; RLIM_NLIMITS],
}

/// Creates and registers a process (without threads).
pub fn new_process(new: NewProcess) -> Arc<Process> {
    let NewProcess {
        slot,
        ppid,
        name,
        aspace,
        files,
        fs,
        exe,
        token,
        rlimits,
    } = new;
    let pid = slot.pid();
    let sd = SecurityDescriptor::for_process(&token);
    let parent = lookup(ppid).filter(|_| ppid != pid);
    aspace.add_user();
    let process = Arc::new(Process {
        pid,
        ppid: AtomicU32::new(ppid),
        // A new process starts in its parent's group and session (init: its own).
        pgid: AtomicU32::new(
            parent
                .as_ref()
                .map_or(pid, |p| p.pgid.load(Ordering::Relaxed)),
        ),
        sid: AtomicU32::new(
            parent
                .as_ref()
                .map_or(pid, |p| p.sid.load(Ordering::Relaxed)),
        ),
        name: Mutex::new(name),
        aspace_id: AtomicU64::new(aspace.id()),
        aspace: RwLock::new(aspace),
        files: Mutex::new(files),
        fs: Mutex::new(fs),
        exe: Mutex::new(exe),
        token: RwLock::new(token),
        sd: RwLock::new(sd),
        signals: Mutex::new(signal::Dispositions::default()),
        live_threads: AtomicU32::new(0),
        exiting: AtomicBool::new(false),
        exit_status: Mutex::new(None),
        children: Mutex::new(Vec::new()),
        child_exited: wait::WaitQueue::new(),
        thread_exited: wait::WaitQueue::new(),
        exit_waiters: wait::WaitQueue::new(),
        zombie: AtomicBool::new(false),
        threads: Mutex::new(Vec::new()),
        rlimits: Mutex::new(rlimits),
        group_exit_code: AtomicI32::new(0),
        threads_started: AtomicU32::new(0),
        cpus_used: AtomicU64::new(0),
        oom_score_adj: AtomicI32::new(
            parent
                .as_ref()
                .map_or(0, |p| p.oom_score_adj.load(Ordering::Relaxed)),
        ),
        controls: controls::Controls::new(parent.as_deref().map(|p| &p.controls)),
        vfork_released: AtomicBool::new(false),
        vfork_done: wait::WaitQueue::new(),
        task_slot: Mutex::new(Some(slot)),
        real_timer: itimer::RealTimer::new(),
        cpu_timers: itimer::CpuTimers::new(),
        usage: rusage::ProcessUsage::new(),
        // Kept by fork (Linux copies the mm's state), cleared by execve.
        membarrier_registered: AtomicU32::new(
            parent
                .as_ref()
                .map_or(0, |p| p.membarrier_registered.load(Ordering::SeqCst)),
        ),
    });
    PROCESSES.write().insert(pid, process.clone());
    if let Some(parent) = parent {
        parent.children.lock().push(process.clone());
    }
    process
}

/// The thread whose task the calling CPU is polling, if any. (The one `unsafe` of
/// `proc`: the per-CPU word holds a pointer, not a counted reference.)
#[allow(unsafe_code)]
pub fn current_thread() -> Option<&'static thread::Thread> {
    let ptr = percpu::try_current()?
        .current_thread
        .load(Ordering::Relaxed) as *const thread::Thread;
    // SAFETY: set by `syscall::entry::ThreadTask::poll` for the duration of the poll, while the task
    // holds an `Arc` to the thread.
    (!ptr.is_null()).then(|| unsafe { &*ptr })
}

/// Checks that `caller` may perform `desired` on `target` (PIP dominance and the target's
/// SD), mapping a refusal to EPERM.
pub fn check_access(
    caller: &Process,
    target: &Process,
    desired: security::AccessMask,
) -> SysResult<()> {
    if core::ptr::eq(caller, target) {
        return Ok(());
    }
    let token = caller.token.read().clone();
    let sd = target.sd.read();
    security::check_process_access(&token, &sd, target.integrity(), desired)
        .map_err(|_| Errno::EPERM)
}

/// Every process (for tkill's search and reports).
pub fn all() -> Vec<Arc<Process>> {
    PROCESSES.read().values().cloned().collect()
}

/// Every process's address space, each once (`CLONE_VM` processes share one): for the
/// walks that stand in for a reverse map.
pub fn address_spaces() -> Vec<Arc<crate::mem::aspace::AddressSpace>> {
    let mut spaces: Vec<Arc<crate::mem::aspace::AddressSpace>> = Vec::new();
    for p in all() {
        let space = p.address_space();
        if !spaces.iter().any(|s| Arc::ptr_eq(s, &space)) {
            spaces.push(space);
        }
    }
    spaces
}
