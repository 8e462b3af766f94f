//! Where a new mapping goes: top-down and bottom-up searches for a free range, and
//! the stack guard gap (no mapping may be placed within `gap` bytes below a
//! `VM_GROWSDOWN` VMA, so a stack can never grow into a neighbour).

use super::{VmFlags, Vma, VmaTree};

/// The lowest address a new mapping may end at below `v` (its start, less the guard
/// gap for a stack).
pub(crate) fn start_gap(v: &Vma, gap: u64) -> u64 {
    if v.flags.contains(VmFlags::GROWSDOWN) {
        v.start.saturating_sub(gap)
    } else {
        v.start
    }
}

/// Whether `[start, end)` is free and clear of every stack's guard gap.
pub(crate) fn range_is_free(tree: &VmaTree, start: u64, end: u64, gap: u64) -> bool {
    if !tree.is_free(start, end) {
        return false;
    }
    tree.next_from(end).is_none_or(|v| end <= start_gap(v, gap))
}

/// Whether a `len`-byte mapping fits at `hint`: inside `[low, high)` and free.
pub(crate) fn hint_fits(
    tree: &VmaTree,
    hint: u64,
    len: u64,
    (low, high): (u64, u64),
    gap: u64,
) -> bool {
    hint >= low
        && hint.checked_add(len).is_some_and(|e| e <= high)
        && range_is_free(tree, hint, hint + len, gap)
}

/// Linux's placement of a mapping that is not fixed, inside `[low, high)`: the hint if
/// the range there is free, else the highest free range below `mmap_base`, else the
/// lowest one above it.
pub(crate) fn place(
    tree: &VmaTree,
    len: u64,
    hint: Option<u64>,
    (low, high): (u64, u64),
    mmap_base: u64,
    gap: u64,
) -> Option<u64> {
    if let Some(h) = hint.filter(|&h| hint_fits(tree, h, len, (low, high), gap)) {
        return Some(h);
    }
    find_top_down(tree, len, low, mmap_base.min(high), gap)
        .or_else(|| find_bottom_up(tree, len, mmap_base.max(low), high, gap))
}

/// The highest `len`-byte free range inside `[low, high)`.
pub(crate) fn find_top_down(
    tree: &VmaTree,
    len: u64,
    low: u64,
    high: u64,
    gap: u64,
) -> Option<u64> {
    if len == 0 || high < low || high - low < len {
        return None;
    }
    let mut hi = high;
    if let Some(above) = tree.next_from(high) {
        hi = hi.min(start_gap(above, gap));
    }
    for v in tree.iter().rev().skip_while(|v| v.start >= high) {
        if v.end <= hi && hi - v.end >= len {
            let at = hi - len;
            return (at >= low).then_some(at);
        }
        hi = hi.min(start_gap(v, gap));
        if hi < low.saturating_add(len) {
            return None;
        }
    }
    (hi >= len && hi - len >= low).then(|| hi - len)
}

/// The lowest `len`-byte free range inside `[low, high)`.
pub(crate) fn find_bottom_up(
    tree: &VmaTree,
    len: u64,
    low: u64,
    high: u64,
    gap: u64,
) -> Option<u64> {
    if len == 0 || high < low || high - low < len {
        return None;
    }
    let mut lo = low;
    let first = tree
        .prev(low)
        .filter(|v| v.end > low)
        .map_or(low, |v| v.start);
    for v in tree.iter().skip_while(|v| v.start < first) {
        let limit = start_gap(v, gap);
        if limit >= lo && limit - lo >= len {
            break;
        }
        lo = lo.max(v.end);
        if lo >= high {
            return None;
        }
    }
    (high - lo >= len).then_some(lo)
}

#[cfg(test)]
mod tests {
    use super::super::Backing;
    use super::*;

    const GAP: u64 = 0x10000;

    fn tree(vmas: &[(u64, u64, VmFlags)]) -> VmaTree {
        let mut t = VmaTree::new();
        for &(s, e, f) in vmas {
            t.rewrite(
                s,
                e,
                usize::MAX,
                &mut |_| None,
                Some(Vma::new(s, e, f, Backing::Anon, 0)),
            )
            .unwrap();
        }
        t
    }

    #[test]
    fn top_down_takes_highest_hole() {
        let r = VmFlags::READ;
        let t = tree(&[
            (0x10000, 0x20000, r),
            (0x30000, 0x40000, VmFlags::WRITE),
            (0x80000, 0x90000, r),
        ]);
        assert_eq!(
            find_top_down(&t, 0x1000, 0x1000, 0x100000, GAP),
            Some(0xff000)
        );
        assert_eq!(
            find_top_down(&t, 0x1000, 0x1000, 0x90000, GAP),
            Some(0x7f000)
        );
        assert_eq!(
            find_top_down(&t, 0x40000, 0x1000, 0x90000, GAP),
            Some(0x40000)
        );
        assert_eq!(find_top_down(&t, 0x41000, 0x1000, 0x90000, GAP), None);
        assert_eq!(
            find_top_down(&t, 0x10000, 0x1000, 0x30000, GAP),
            Some(0x20000)
        );
        assert_eq!(find_top_down(&t, 0x10000, 0x21000, 0x30000, GAP), None);
        assert_eq!(
            find_top_down(&t, 0xf000, 0x1000, 0x10000, GAP),
            Some(0x1000)
        );
        // High inside a VMA.
        assert_eq!(
            find_top_down(&t, 0x1000, 0x1000, 0x38000, GAP),
            Some(0x2f000)
        );
    }

    #[test]
    fn guard_gap_below_stacks() {
        let t = tree(&[(
            0x100000,
            0x110000,
            VmFlags::READ | VmFlags::WRITE | VmFlags::GROWSDOWN,
        )]);
        assert_eq!(
            find_top_down(&t, 0x1000, 0x1000, 0x200000, GAP),
            Some(0x1ff000)
        );
        assert_eq!(
            find_top_down(&t, 0x1000, 0x1000, 0x100000, GAP),
            Some(0x100000 - GAP - 0x1000)
        );
        assert!(!range_is_free(&t, 0xff000, 0x100000, GAP));
        assert!(range_is_free(&t, 0xef000, 0xf0000, GAP));
        assert!(!range_is_free(&t, 0xf0000, 0xf1000, GAP));
        assert_eq!(
            find_bottom_up(&t, 0x1000, 0xf0000, 0x200000, GAP),
            Some(0x110000)
        );
    }

    #[test]
    fn bottom_up_takes_lowest_hole() {
        let r = VmFlags::READ;
        let t = tree(&[(0x10000, 0x20000, r), (0x30000, 0x40000, VmFlags::WRITE)]);
        assert_eq!(
            find_bottom_up(&t, 0x1000, 0x10000, 0x100000, GAP),
            Some(0x20000)
        );
        assert_eq!(
            find_bottom_up(&t, 0x1000, 0x1000, 0x100000, GAP),
            Some(0x1000)
        );
        assert_eq!(
            find_bottom_up(&t, 0x11000, 0x10000, 0x100000, GAP),
            Some(0x40000)
        );
        assert_eq!(
            find_bottom_up(&t, 0x1000, 0x15000, 0x100000, GAP),
            Some(0x20000)
        );
        assert_eq!(find_bottom_up(&t, 0x1000, 0x38000, 0x40000, GAP), None);
    }
}
