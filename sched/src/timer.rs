//! Per-CPU timers: each CPU keeps its own deadline-ordered map of wakers, which
//! only that CPU's executor fires, so there is no global timer lock and no
//! cross-CPU traffic on the timer path; the earliest deadline is what the CPU
//! passes to `Platform::idle`. The `Sleep` future that registers here is in
//! `sleep.rs`.

use alloc::collections::BTreeMap;
use core::task::Waker;

/// A timer entry's key: its deadline, then a per-CPU sequence number that
/// keeps equal deadlines in registration order.
type Key = (u64, u64);

/// One CPU's pending timers, earliest first.
pub(crate) struct TimerQueue {
    entries: BTreeMap<Key, Waker>,
    next_seq: u64,
}

impl TimerQueue {
    /// No timers.
    pub(crate) const fn new() -> Self {
        Self {
            entries: BTreeMap::new(),
            next_seq: 0,
        }
    }

    /// Wake `waker` once `deadline_ns` passes; returns the entry's sequence number.
    pub(crate) fn insert(&mut self, deadline_ns: u64, waker: Waker) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.entries.insert((deadline_ns, seq), waker);
        seq
    }

    /// Point a registered entry at `waker` (if it does not already wake the
    /// same task). False if the entry is gone (fired or removed).
    pub(crate) fn refresh(&mut self, deadline_ns: u64, seq: u64, waker: &Waker) -> bool {
        match self.entries.get_mut(&(deadline_ns, seq)) {
            Some(registered) => {
                if !registered.will_wake(waker) {
                    registered.clone_from(waker);
                }
                true
            }
            None => false,
        }
    }

    /// Forget an entry (no-op if it already fired).
    pub(crate) fn remove(&mut self, deadline_ns: u64, seq: u64) {
        self.entries.remove(&(deadline_ns, seq));
    }

    /// Take the earliest entry if its deadline is at or before `now_ns`.
    pub(crate) fn pop_expired(&mut self, now_ns: u64) -> Option<Waker> {
        let entry = self.entries.first_entry()?;
        (entry.key().0 <= now_ns).then(|| entry.remove())
    }

    /// The earliest deadline, if any timer is pending.
    pub(crate) fn next_deadline_ns(&self) -> Option<u64> {
        self.entries
            .first_key_value()
            .map(|(&(deadline_ns, _), _)| deadline_ns)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::sync::Arc;
    use alloc::task::Wake;
    use core::sync::atomic::{AtomicUsize, Ordering};

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn fires_in_deadline_order_then_registration_order() {
        let mut q = TimerQueue::new();
        let w = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        q.insert(30, w.clone());
        let a = q.insert(10, w.clone());
        let b = q.insert(10, w.clone());
        assert!(a < b);
        assert_eq!(q.next_deadline_ns(), Some(10));
        assert!(
            q.pop_expired(9).is_none(),
            "nothing fires before its deadline"
        );
        assert!(q.pop_expired(10).is_some());
        assert!(q.pop_expired(10).is_some());
        assert!(q.pop_expired(29).is_none());
        assert_eq!(q.next_deadline_ns(), Some(30));
        assert!(q.pop_expired(u64::MAX).is_some());
        assert_eq!(q.next_deadline_ns(), None);
    }

    #[test]
    fn refresh_and_remove() {
        let mut q = TimerQueue::new();
        let c1 = Arc::new(Count(AtomicUsize::new(0)));
        let c2 = Arc::new(Count(AtomicUsize::new(0)));
        let seq = q.insert(5, Waker::from(c1.clone()));
        assert!(q.refresh(5, seq, &Waker::from(c2.clone())));
        q.pop_expired(5).unwrap().wake();
        assert_eq!(c1.0.load(Ordering::SeqCst), 0);
        assert_eq!(c2.0.load(Ordering::SeqCst), 1, "refresh replaced the waker");
        assert!(
            !q.refresh(5, seq, &Waker::from(c2)),
            "fired entries are gone"
        );
        let seq = q.insert(7, Waker::from(c1));
        q.remove(7, seq);
        assert_eq!(q.len(), 0);
    }
}
