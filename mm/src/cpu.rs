//! Which CPU is running: the seam through which the kernel tells mm the current CPU
//! number, so mm can spread per-CPU state (the VMA tree lock's reader counters) without
//! knowing how the CPU finds itself; and how a spin-wait gives its CPU away
//! ([`Backoff`], over the kernel's relax hook).
//!
//! The kernel installs its hook once at boot with [`set_current_cpu_hook`]. Until then
//! (and in host crates that never install one) the current CPU is CPU 0, except in mm's
//! own unit tests, where each host thread gets its own number so that tests exercise
//! several CPUs' state. Nothing in mm depends on the answer for correctness: it only
//! picks which copy of per-CPU state a caller uses, and a caller keeps the copy it
//! picked (it may be preempted and moved meanwhile).

use sched::CpuId;

/// The installed hook, if any.
static HOOK: spin::Once<fn() -> CpuId> = spin::Once::new();

/// Installs `hook` as the answer to "which CPU am I on?". The kernel calls it once at
/// boot, after its per-CPU data is set up, with a function that returns the calling
/// CPU's number; it must be cheap and callable from any context mm runs in. Only the
/// first call takes effect; later ones are ignored with a warning.
pub fn set_current_cpu_hook(hook: fn() -> CpuId) {
    let mut installed = false;
    HOOK.call_once(|| {
        installed = true;
        hook
    });
    if !installed {
        log::warn!("mm::cpu: current-CPU hook already installed; ignoring a second one");
    }
}

/// The installed relax hook, if any.
static RELAX: spin::Once<fn()> = spin::Once::new();

/// Spins a [`Backoff`] makes before it calls the relax hook.
pub const SPINS_BEFORE_RELAX: u32 = 128;

/// Installs `hook` as what a long spin-wait calls instead of spinning on (the kernel:
/// halt until the next interrupt, with a short timer armed, so that under a hypervisor
/// with more vCPUs than cores the vCPU being waited for gets the core). Must return
/// soon and be callable wherever mm spins. Only the first call takes effect.
pub fn set_relax_hook(hook: fn()) {
    RELAX.call_once(|| hook);
}

/// The pacing of one spin-wait: [`SPINS_BEFORE_RELAX`] plain spins, then each step
/// calls the relax hook (a spin where none is installed, as on the host).
#[derive(Debug, Default)]
pub struct Backoff {
    spins: u32,
}

impl Backoff {
    /// A fresh wait.
    pub const fn new() -> Backoff {
        Backoff { spins: 0 }
    }

    /// One step of waiting.
    #[inline]
    pub fn snooze(&mut self) {
        if self.spins < SPINS_BEFORE_RELAX {
            self.spins += 1;
            core::hint::spin_loop();
        } else if let Some(relax) = RELAX.get() {
            relax();
        } else {
            core::hint::spin_loop();
        }
    }
}

/// The calling CPU's number, as the installed hook reports it.
#[inline]
pub(crate) fn current_cpu() -> CpuId {
    match HOOK.get() {
        Some(hook) => hook(),
        None => default_cpu(),
    }
}

/// Without a hook: CPU 0.
#[cfg(not(test))]
fn default_cpu() -> CpuId {
    CpuId(0)
}

/// Without a hook, in mm's unit tests: a number per host thread, handed out in turn, so
/// that concurrent tests spread over several CPUs' state.
#[cfg(test)]
fn default_cpu() -> CpuId {
    use core::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    std::thread_local! {
        static THIS_THREAD: CpuId = CpuId(NEXT.fetch_add(1, Ordering::Relaxed) % sched::MAX_CPUS as u32);
    }
    THIS_THREAD.with(|cpu| *cpu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    /// Installs the test default as the hook (so other tests see no change), then
    /// checks that a second hook is ignored and that each thread keeps its own number.
    #[test]
    fn hook_is_installed_once_and_numbers_threads() {
        set_current_cpu_hook(default_cpu);
        set_current_cpu_hook(|| CpuId(7));
        let here = current_cpu();
        assert_eq!(current_cpu(), here);
        let a = thread::spawn(current_cpu).join().unwrap();
        let b = thread::spawn(current_cpu).join().unwrap();
        assert!(here != a && a != b && here != b);
        assert!([here, a, b].iter().all(|c| c.index() < sched::MAX_CPUS));
    }
}
