//! Merging: two VMAs that touch and agree on flags, backing (and, for files,
//! contiguous offsets) and interceptor become one.

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::{Backing, Vma};

/// Whether `a` followed by `b` can be one VMA.
pub(crate) fn can_merge(a: &Vma, b: &Vma) -> bool {
    let interceptors_agree = match (&a.interceptor, &b.interceptor) {
        (None, None) => true,
        (Some(x), Some(y)) => Arc::ptr_eq(x, y),
        _ => false,
    };
    let hugetlb_agree = match (&a.hugetlb, &b.hugetlb) {
        (None, None) => true,
        (Some(x), Some(y)) => Arc::ptr_eq(x, y),
        _ => false,
    };
    a.end == b.start
        && a.flags == b.flags
        && interceptors_agree
        && a.intercept_modes == b.intercept_modes
        && a.policy == b.policy
        && a.anon_name == b.anon_name
        && hugetlb_agree
        && a.backing.same_object(&b.backing)
        && match a.backing {
            Backing::Anon => true,
            Backing::File(_) => a.pgoff + a.pages() == b.pgoff,
        }
}

/// Merges every run of mergeable neighbours in `vmas` (sorted by start).
pub(crate) fn coalesce(vmas: Vec<Vma>) -> Vec<Vma> {
    let mut out: Vec<Vma> = Vec::with_capacity(vmas.len());
    for v in vmas {
        match out.last_mut() {
            Some(last) if can_merge(last, &v) => last.end = v.end,
            _ => out.push(v),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::VmFlags;
    use super::*;
    use crate::pagecache::{FileId, FileObject};
    use crate::phys::{soft::SoftFrames, Frames};
    use alloc::vec;

    #[test]
    fn anon_merges_when_flags_agree() {
        let rw = VmFlags::READ | VmFlags::WRITE;
        let a = Vma::new(0x1000, 0x3000, rw, Backing::Anon, 0);
        let b = Vma::new(0x3000, 0x4000, rw, Backing::Anon, 0);
        let c = Vma::new(0x4000, 0x5000, VmFlags::READ, Backing::Anon, 0);
        let d = Vma::new(0x6000, 0x7000, VmFlags::READ, Backing::Anon, 0);
        assert!(can_merge(&a, &b));
        assert!(!can_merge(&b, &c));
        assert!(!can_merge(&c, &d), "not contiguous");
        let out = coalesce(vec![a, b, c, d]);
        let r: Vec<_> = out.iter().map(|v| (v.start, v.end)).collect();
        assert_eq!(r, [(0x1000, 0x4000), (0x4000, 0x5000), (0x6000, 0x7000)]);
    }

    #[test]
    fn files_merge_only_with_contiguous_offsets() {
        let frames = Frames::new(SoftFrames::new());
        let f = FileObject::from_bytes(FileId(1), "/f", vec![0u8; 65536], frames.clone());
        let g = FileObject::from_bytes(FileId(2), "/g", vec![0u8; 65536], frames);
        let r = VmFlags::READ;
        let a = Vma::new(0x1000, 0x3000, r, Backing::File(f.clone()), 0);
        let b = Vma::new(0x3000, 0x4000, r, Backing::File(f.clone()), 2);
        let b_gap = Vma::new(0x3000, 0x4000, r, Backing::File(f.clone()), 3);
        let b_other = Vma::new(0x3000, 0x4000, r, Backing::File(g), 2);
        let anon = Vma::new(0x3000, 0x4000, r, Backing::Anon, 0);
        assert!(can_merge(&a, &b));
        assert!(!can_merge(&a, &b_gap));
        assert!(!can_merge(&a, &b_other));
        assert!(!can_merge(&a, &anon));
    }
}
