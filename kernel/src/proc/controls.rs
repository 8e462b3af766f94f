//! Per-process switches `prctl` sets: the parent-death signal, dumpable, no_new_privs and
//! the child-subreaper mark, and the personality. Which survive fork follows Linux.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};

/// A process's `prctl` state.
pub struct Controls {
    /// Signal sent to this process when its parent exits (`PR_SET_PDEATHSIG`; 0: none).
    /// Not inherited.
    pub pdeath_signal: AtomicU8,
    /// `PR_SET_DUMPABLE`. Inherited.
    pub dumpable: AtomicBool,
    /// `PR_SET_NO_NEW_PRIVS`: once set, never cleared. Inherited.
    pub no_new_privs: AtomicBool,
    /// `PR_SET_CHILD_SUBREAPER`: orphaned descendants come here instead of init. Not
    /// inherited.
    pub child_subreaper: AtomicBool,
    /// `personality(2)`'s execution domain and flags (`PER_LINUX` is 0). Inherited, and
    /// kept across exec; `ADDR_NO_RANDOMIZE` there fixes the next exec's layout.
    pub personality: AtomicU32,
}

impl Controls {
    /// The state of a new process: a first process's defaults, or what a child keeps
    /// of `parent`'s.
    pub fn new(parent: Option<&Controls>) -> Controls {
        let inherited = |f: fn(&Controls) -> &AtomicBool, default| {
            parent.map_or(default, |p| f(p).load(Ordering::Relaxed))
        };
        Controls {
            pdeath_signal: AtomicU8::new(0),
            dumpable: AtomicBool::new(inherited(|c| &c.dumpable, true)),
            no_new_privs: AtomicBool::new(inherited(|c| &c.no_new_privs, false)),
            child_subreaper: AtomicBool::new(false),
            personality: AtomicU32::new(
                parent.map_or(0, |p| p.personality.load(Ordering::Relaxed)),
            ),
        }
    }
}
