//! The idle-CPU mask and the protocol that makes a wake-up impossible to lose
//! while sending a kick (IPI) only to a CPU that is really going to sleep.
//!
//! It is Dekker's pattern on two locations, the run queue and this mask:
//!
//! - a CPU going idle sets its bit ([`IdleMask::announce`], a SeqCst RMW plus
//!   a SeqCst fence), then re-checks its queues; it parks only if they are
//!   still empty, and the platform re-checks once more with wake sources
//!   masked (`still_idle`);
//! - a pusher pushes the task, issues a SeqCst fence ([`IdleMask::after_push`]),
//!   then reads the mask; if the target's bit is set it clears it with an RMW
//!   ([`IdleMask::claim`]) and, if it was the one to clear it, kicks.
//!
//! The two fences are totally ordered: either the CPU's re-check sees the
//! task, or the pusher sees the bit. In the second case exactly one claimer
//! clears the bit and kicks; the parked CPU wakes, or `still_idle` sees its bit
//! gone and does not park. A busy CPU (bit clear) is never kicked. A claim that
//! races with the CPU withdrawing on its own sends a stale kick, which only
//! makes a later `idle` return early.
//!
//! One `u64` holds every CPU (`MAX_CPUS` is 64), so a pusher finds an idle
//! thief with one load.

use core::sync::atomic::{fence, AtomicU64, Ordering};

use crate::CpuId;

fn bit(cpu: CpuId) -> u64 {
    1u64 << cpu.0
}

/// One bit per CPU: set while that CPU is (about to be) parked.
pub(crate) struct IdleMask(AtomicU64);

impl IdleMask {
    /// No CPU idle.
    pub(crate) const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// The calling CPU is about to park: publish it, then the caller re-checks its queues.
    pub(crate) fn announce(&self, cpu: CpuId) {
        self.0.fetch_or(bit(cpu), Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// The calling CPU is running again (or decided not to park).
    pub(crate) fn withdraw(&self, cpu: CpuId) {
        if self.is_announced(cpu) {
            self.0.fetch_and(!bit(cpu), Ordering::SeqCst);
        }
    }

    /// Whether `cpu`'s bit is still set (nobody claimed it).
    pub(crate) fn is_announced(&self, cpu: CpuId) -> bool {
        self.0.load(Ordering::SeqCst) & bit(cpu) != 0
    }

    /// Pusher side: order the push before the mask reads that follow.
    pub(crate) fn after_push(&self) {
        fence(Ordering::SeqCst);
    }

    /// Clear `cpu`'s bit if set. True when this caller cleared it and so owns the kick.
    pub(crate) fn claim(&self, cpu: CpuId) -> bool {
        self.is_announced(cpu) && self.0.fetch_and(!bit(cpu), Ordering::SeqCst) & bit(cpu) != 0
    }

    /// Claim some idle CPU other than `except`, searching upwards from it so
    /// that thieves are spread. Returns the CPU this caller must kick.
    pub(crate) fn claim_other(&self, except: CpuId) -> Option<CpuId> {
        loop {
            let mask = self.0.load(Ordering::SeqCst) & !bit(except);
            if mask == 0 {
                return None;
            }
            let start = (except.0 + 1) % 64;
            let cpu = CpuId((mask.rotate_right(start).trailing_zeros() + start) % 64);
            if self.0.fetch_and(!bit(cpu), Ordering::SeqCst) & bit(cpu) != 0 {
                return Some(cpu);
            }
        }
    }

    /// Claim every idle CPU at once; returns their bits.
    pub(crate) fn claim_all(&self) -> u64 {
        fence(Ordering::SeqCst);
        self.0.swap(0, Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    #[test]
    fn claim_is_exclusive() {
        let m = IdleMask::new();
        assert!(!m.claim(CpuId(3)));
        m.announce(CpuId(3));
        assert!(m.claim(CpuId(3)));
        assert!(!m.claim(CpuId(3)), "only one claimer kicks");
        assert!(!m.is_announced(CpuId(3)));
    }

    #[test]
    fn claim_other_skips_self_and_rotates() {
        let m = IdleMask::new();
        for c in [0, 2, 5, 63] {
            m.announce(CpuId(c));
        }
        assert_eq!(m.claim_other(CpuId(2)), Some(CpuId(5)));
        assert_eq!(m.claim_other(CpuId(2)), Some(CpuId(63)));
        assert_eq!(m.claim_other(CpuId(2)), Some(CpuId(0)));
        assert_eq!(m.claim_other(CpuId(2)), None, "2 itself is never claimed");
        assert_eq!(m.claim_all(), bit(CpuId(2)));
    }

    /// The Dekker litmus test, many times: a CPU announces then checks for
    /// work; a pusher publishes work then claims. At least one of them must
    /// see the other, or the wake-up would be lost.
    #[test]
    fn announce_and_push_never_both_miss() {
        for _ in 0..2_000 {
            let mask = Arc::new(IdleMask::new());
            let work = Arc::new(AtomicBool::new(false));
            let cpu = {
                let (mask, work) = (mask.clone(), work.clone());
                std::thread::spawn(move || {
                    mask.announce(CpuId(1));
                    work.load(Ordering::Relaxed)
                })
            };
            work.store(true, Ordering::Relaxed);
            mask.after_push();
            let claimed = mask.claim(CpuId(1));
            let saw_work = cpu.join().unwrap();
            assert!(saw_work || claimed, "lost wake-up");
        }
    }
}
