//! Splitting: the part of a VMA inside a range, with the file offset following the
//! start. VMAs carry no per-page state, so a split is just two clipped copies.

use super::Vma;
use crate::frame::PAGE_SIZE;

impl Vma {
    /// The part of the VMA inside `[start, end)` (which must overlap it).
    pub(crate) fn clip(&self, start: u64, end: u64) -> Vma {
        let s = self.start.max(start);
        let e = self.end.min(end);
        debug_assert!(s < e, "clip outside the VMA");
        let mut v = self.clone();
        v.pgoff = self.pgoff + (s - self.start) / PAGE_SIZE;
        v.start = s;
        v.end = e;
        v
    }

    /// The two halves of the VMA split at `at` (strictly inside it).
    pub fn split_at(&self, at: u64) -> (Vma, Vma) {
        debug_assert!(self.start < at && at < self.end && at.is_multiple_of(PAGE_SIZE));
        (self.clip(self.start, at), self.clip(at, self.end))
    }

    /// The VMA's pieces outside `[start, end)`: the part below and the part above.
    pub(crate) fn outside(&self, start: u64, end: u64) -> (Option<Vma>, Option<Vma>) {
        let below = (self.start < start).then(|| self.clip(self.start, start));
        let above = (self.end > end).then(|| self.clip(end, self.end));
        (below, above)
    }

    /// The same VMA moved to start at `new_start` (same length, flags and offset).
    pub(crate) fn moved_to(&self, new_start: u64) -> Vma {
        let mut v = self.clone();
        v.end = new_start + self.len_bytes();
        v.start = new_start;
        v
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Backing, VmFlags};
    use super::*;

    #[test]
    fn clip_and_split_keep_offsets() {
        let v = Vma::new(0x10000, 0x20000, VmFlags::READ, Backing::Anon, 5);
        let (a, b) = v.split_at(0x13000);
        assert_eq!((a.start, a.end, a.pgoff), (0x10000, 0x13000, 5));
        assert_eq!((b.start, b.end, b.pgoff), (0x13000, 0x20000, 8));
        let (lo, hi) = v.outside(0x12000, 0x14000);
        assert_eq!(lo.map(|x| (x.start, x.end)), Some((0x10000, 0x12000)));
        assert_eq!(
            hi.map(|x| (x.start, x.end, x.pgoff)),
            Some((0x14000, 0x20000, 9))
        );
        let (lo, hi) = v.outside(0x10000, 0x20000);
        assert!(lo.is_none() && hi.is_none());
        let m = b.moved_to(0x40000);
        assert_eq!((m.start, m.end, m.pgoff), (0x40000, 0x4d000, 8));
    }
}
