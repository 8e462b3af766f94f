//! A spin lock that keeps interrupts off on its CPU while it is held, as a
//! `lock_api::RawMutex` (Linux's `spin_lock_irqsave`). The kernel heap uses it: an
//! interrupt handler that allocates or frees (a wake that pushes past a run queue's
//! ring, the last reference to a task dropped) then never finds the heap locked by the
//! code it interrupted on its own CPU, which would spin for good.

use core::sync::atomic::{AtomicBool, Ordering};
use x86_64::instructions::interrupts;

/// The lock (see the module documentation).
pub struct IrqSpinLock {
    locked: AtomicBool,
    /// Whether interrupts were on when the holder took the lock (restored on unlock;
    /// written only by the holder).
    interrupts_were_on: AtomicBool,
}

impl IrqSpinLock {
    /// Takes the lock if it is free, with interrupts off; returns whether it did (with
    /// interrupts as they were if not).
    fn try_take(&self, were_on: bool) -> bool {
        interrupts::disable();
        if self
            .locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            self.interrupts_were_on.store(were_on, Ordering::Relaxed);
            return true;
        }
        if were_on {
            interrupts::enable();
        }
        false
    }
}

// SAFETY: `lock` and `try_lock` give the lock to one holder at a time (an acquiring
// compare-exchange of `locked`), and `unlock` releases it with a release store.
unsafe impl lock_api::RawMutex for IrqSpinLock {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = IrqSpinLock {
        locked: AtomicBool::new(false),
        interrupts_were_on: AtomicBool::new(false),
    };

    type GuardMarker = lock_api::GuardNoSend;

    fn lock(&self) {
        let were_on = interrupts::are_enabled();
        while !self.try_take(were_on) {
            // Wait with interrupts as they were, so this CPU still takes them.
            while self.locked.load(Ordering::Relaxed) {
                core::hint::spin_loop();
            }
        }
    }

    fn try_lock(&self) -> bool {
        self.try_take(interrupts::are_enabled())
    }

    unsafe fn unlock(&self) {
        let were_on = self.interrupts_were_on.load(Ordering::Relaxed);
        self.locked.store(false, Ordering::Release);
        if were_on {
            interrupts::enable();
        }
    }

    fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Relaxed)
    }
}
