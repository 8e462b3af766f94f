//! A hugetlbfs mount's share of the huge-page pool (Linux's `hugepage_subpool`), for
//! `size=` and `min_size=`. With `size=`, the mount's files together may reserve or
//! hold at most that many pages (a private mapping's reservations count too); with
//! `min_size=`, the mount reserves that many pages from the pool when it is mounted
//! (`HugePages_Rsvd` grows by them) and its files draw on that reserve before the
//! pool's, so they always find at least `min_size` of pages; the reserve goes back to
//! the pool when the mount, and every file and page of it, is gone.
//!
//! The arithmetic is Linux's: each page a file reserves or allocates without a
//! reservation is counted against `size=` and taken from the mount's reserve while it
//! lasts (needing no new pool reservation), else reserved from the pool; each
//! reservation or page given back refills the mount's reserve up to `min_size` first
//! (keeping it reserved in the pool) while the mount uses less than its minimum, and
//! only the rest goes back to the pool.

use alloc::sync::Arc;

use spin::Mutex;

use crate::frame::{Pfn, Policy};
use crate::hugetlb::{HugeSize, HugetlbSource};

/// One mount's share in front of the pool (itself a [`HugetlbSource`] for the
/// mount's files).
pub struct HugetlbSubpool {
    pool: Arc<dyn HugetlbSource>,
    size: HugeSize,
    /// Pages the files may reserve or hold together (`size=`), if limited.
    max_pages: Option<u64>,
    /// Pages the mount keeps reserved (`min_size=`; 0 without).
    min_pages: u64,
    state: Mutex<SubpoolState>,
}

#[derive(Default)]
struct SubpoolState {
    /// Pages the files reserve or hold (counted only under a `size=` limit, as
    /// Linux's `used_hpages`).
    used: u64,
    /// Pages of `min_pages` reserved in the pool and not yet handed to a file.
    reserve: u64,
}

impl HugetlbSubpool {
    /// A mount's share of pages of `size`: at most `max_pages` for its files (if
    /// limited), and `min_pages` reserved from `pool` now; `None` if the pool's free
    /// unreserved pages cannot cover those (mount's `ENOMEM`).
    pub fn new(
        pool: Arc<dyn HugetlbSource>,
        size: HugeSize,
        max_pages: Option<u64>,
        min_pages: u64,
    ) -> Option<Arc<HugetlbSubpool>> {
        if !pool.reserve(size, min_pages) {
            return None;
        }
        Some(Arc::new(HugetlbSubpool {
            pool,
            size,
            max_pages,
            min_pages,
            state: Mutex::new(SubpoolState {
                used: 0,
                reserve: min_pages,
            }),
        }))
    }

    /// The `size=` limit, if any, and the pages counted against it (`statfs`).
    pub fn usage(&self) -> (Option<u64>, u64) {
        (self.max_pages, self.state.lock().used)
    }

    /// Pages of the mount's reserve not yet handed to a file.
    pub fn reserve_left(&self) -> u64 {
        self.state.lock().reserve
    }

    /// Takes `pages` for files: how many the mount's reserve did not cover (to
    /// reserve from the pool), or `None` past the `size=` limit (nothing taken).
    fn get(&self, pages: u64) -> Option<u64> {
        let mut st = self.state.lock();
        if let Some(max) = self.max_pages {
            let used = st.used.checked_add(pages).filter(|&u| u <= max)?;
            st.used = used;
        }
        let covered = pages.min(st.reserve);
        st.reserve -= covered;
        Some(pages - covered)
    }

    /// Gives back `pages` from files: how many the mount's reserve did not keep (to
    /// give back to the pool).
    fn put(&self, pages: u64) -> u64 {
        let mut st = self.state.lock();
        if self.max_pages.is_some() {
            st.used = st.used.saturating_sub(pages);
        }
        if st.used >= self.min_pages {
            return pages;
        }
        let kept = pages.min(self.min_pages - st.reserve);
        st.reserve += kept;
        pages - kept
    }

    /// Undoes a [`get`](Self::get) of `pages` of which `covered` came from the
    /// mount's reserve.
    fn unget(&self, pages: u64, covered: u64) {
        let mut st = self.state.lock();
        if self.max_pages.is_some() {
            st.used = st.used.saturating_sub(pages);
        }
        st.reserve += covered;
    }
}

impl HugetlbSource for HugetlbSubpool {
    fn reserve(&self, size: HugeSize, pages: u64) -> bool {
        debug_assert_eq!(size, self.size);
        let Some(from_pool) = self.get(pages) else {
            return false;
        };
        if from_pool == 0 || self.pool.reserve(size, from_pool) {
            return true;
        }
        self.unget(pages, pages - from_pool);
        false
    }

    fn unreserve(&self, size: HugeSize, pages: u64) {
        let to_pool = self.put(pages);
        self.pool.unreserve(size, to_pool);
    }

    fn take(&self, size: HugeSize, reserved: bool, policy: Policy) -> Option<Pfn> {
        if reserved {
            return self.pool.take(size, true, policy);
        }
        // An unreserved page counts against `size=` and draws on the mount's reserve
        // first.
        let from_reserve = self.get(1)? == 0;
        let page = self.pool.take(size, from_reserve, policy);
        if page.is_none() {
            self.unget(1, u64::from(from_reserve));
        }
        page
    }

    fn give_back(&self, size: HugeSize, head: Pfn) {
        self.pool.give_back(size, head);
        // A page the mount's reserve keeps stays reserved in the pool.
        if self.put(1) == 0 && !self.pool.reserve(size, 1) {
            self.state.lock().reserve -= 1;
        }
    }
}

impl Drop for HugetlbSubpool {
    fn drop(&mut self) {
        let left = self.state.lock().reserve;
        self.pool.unreserve(self.size, left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aspace::tests::harness;
    use crate::fault::hugetlb::tests::with_pool;
    use crate::frame::Policy;
    use crate::hugetlb_file::HugetlbFile;
    use crate::pagecache::FileObject;
    use crate::pagetable::HUGE_SIZE;

    #[test]
    fn a_mount_reserves_its_minimum_and_files_draw_on_it_first() {
        let h = harness();
        let pool = with_pool(&h, 4);
        // (capacity, in use, reserved)
        assert!(HugetlbSubpool::new(pool.clone(), HugeSize::Mib2, None, 5).is_none());
        assert_eq!(pool.counts(), (4, 0, 0));
        let mount = HugetlbSubpool::new(pool.clone(), HugeSize::Mib2, None, 2).unwrap();
        assert_eq!(pool.counts(), (4, 0, 2), "reserved at mount");
        let pages = HugetlbFile::new(HugeSize::Mib2, mount.clone(), h.frames.clone(), None);
        pages.set_size(3 * HUGE_SIZE);
        assert!(pages.reserve(0, 1));
        assert_eq!(pool.counts(), (4, 0, 2), "the mount's reserve covers it");
        assert_eq!(mount.reserve_left(), 1);
        assert!(pages.reserve(1, 2));
        assert_eq!(
            pool.counts(),
            (4, 0, 3),
            "one from the mount, one more from the pool"
        );
        assert_eq!(mount.reserve_left(), 0);
        let head = pages.page_for_fault(0, Policy::Local).unwrap();
        pages.release(head);
        assert_eq!(pool.counts(), (4, 1, 2));
        // Truncating gives back the page and both reservations: the mount's reserve
        // refills to its minimum first and keeps those reserved in the pool.
        pages.set_size(0);
        assert_eq!(mount.reserve_left(), 2);
        assert_eq!(pool.counts(), (4, 0, 2));
        // A page taken without a reservation draws on the mount's reserve too.
        let taken = mount.take(HugeSize::Mib2, false, Policy::Local).unwrap();
        assert_eq!((mount.reserve_left(), pool.counts()), (1, (4, 1, 1)));
        mount.give_back(HugeSize::Mib2, taken);
        assert_eq!((mount.reserve_left(), pool.counts()), (2, (4, 0, 2)));
        drop(pages);
        assert_eq!(
            pool.counts(),
            (4, 0, 2),
            "the mount still holds its minimum"
        );
        drop(mount);
        assert_eq!(pool.counts(), (4, 0, 0), "released with the mount");
        assert_eq!(h.soft.live(), 0);
    }

    #[test]
    fn a_failed_reservation_leaves_the_mounts_reserve_as_it_was() {
        let h = harness();
        let pool = with_pool(&h, 3);
        let mount = HugetlbSubpool::new(pool.clone(), HugeSize::Mib2, None, 1).unwrap();
        let file = FileObject::new_hugetlb(
            "/dev/hugepages/x",
            HugetlbFile::new(HugeSize::Mib2, mount.clone(), h.frames.clone(), None),
            h.frames.clone(),
        );
        let pages = file.hugetlb().unwrap().clone();
        assert!(
            !pages.reserve(0, 4),
            "one from the mount and three more: too many"
        );
        assert_eq!(mount.reserve_left(), 1);
        assert_eq!(pool.counts(), (3, 0, 1));
        assert!(pages.reserve(0, 3));
        assert_eq!(pool.counts(), (3, 0, 3));
        drop((file, pages));
        assert_eq!(pool.counts(), (3, 0, 1));
        drop(mount);
        assert_eq!(pool.counts(), (3, 0, 0));
    }

    #[test]
    fn a_size_limit_counts_every_file_and_private_reservations() {
        let h = harness();
        let pool = with_pool(&h, 8);
        let mount = HugetlbSubpool::new(pool.clone(), HugeSize::Mib2, Some(3), 2).unwrap();
        assert_eq!(pool.counts(), (8, 0, 2));
        let a = HugetlbFile::new(HugeSize::Mib2, mount.clone(), h.frames.clone(), None);
        let b = HugetlbFile::new(HugeSize::Mib2, mount.clone(), h.frames.clone(), None);
        assert!(a.reserve(0, 2));
        assert!(!b.reserve(0, 2), "2 + 2 pages past a limit of 3");
        assert!(b.reserve(0, 1));
        assert_eq!(pool.counts(), (8, 0, 3));
        assert!(
            mount.take(HugeSize::Mib2, false, Policy::Local).is_none(),
            "at the limit"
        );
        // Giving back while the mount uses its minimum or more goes to the pool.
        drop(b);
        assert_eq!((mount.reserve_left(), pool.counts()), (0, (8, 0, 2)));
        drop(a);
        assert_eq!((mount.reserve_left(), pool.counts()), (2, (8, 0, 2)));
        drop(mount);
        assert_eq!(pool.counts(), (8, 0, 0));
    }
}
