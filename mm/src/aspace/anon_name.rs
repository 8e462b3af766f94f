//! Names for anonymous memory: `prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, addr, len,
//! name)`. The name is a VMA attribute (split with the VMA, kept by fork, a barrier to
//! merging) that `/proc/<pid>/maps` shows as `[anon:NAME]` (`[anon_shmem:NAME]` for
//! shared anonymous memory), so a program can tell its heaps and pools apart there.

use alloc::sync::Arc;

use super::AddressSpace;
use crate::errno::MmError;
use crate::pagetable::PageTable;
use crate::vma::Vma;

/// The longest name, its terminating NUL included (Linux's `ANON_VMA_NAME_MAX_LEN`).
pub const ANON_NAME_MAX_LEN: usize = 80;

/// Whether `name` may name memory: printable ASCII without `\`, `` ` ``, `$`, `[` or
/// `]` (the characters Linux refuses, so maps stays parseable), shorter than
/// [`ANON_NAME_MAX_LEN`].
pub fn valid_anon_name(name: &[u8]) -> bool {
    name.len() < ANON_NAME_MAX_LEN
        && name
            .iter()
            .all(|&c| (0x20..0x7f).contains(&c) && !b"\\`$[]".contains(&c))
}

/// Whether `vma` is anonymous memory a name can be given to.
fn anonymous(vma: &Vma) -> bool {
    vma.hugetlb.is_none() && vma.file().is_none_or(|f| f.is_anon_shmem())
}

impl<P: PageTable> AddressSpace<P> {
    /// Names the anonymous memory of `[addr, addr + len)` (`None`: removes the name).
    /// `EINVAL` for an unaligned `addr`, an overflowing range or a bad name; `ENOMEM`
    /// when part of the range is not mapped; `EBADF` when part of it is file-backed
    /// (Linux's answers). The whole range is checked first: a refusal changes nothing
    /// (Linux names the VMAs before the first bad one).
    pub fn set_anon_name(&self, addr: u64, len: u64, name: Option<&str>) -> Result<(), MmError> {
        let range = super::mseal::page_range(addr, len)?;
        if name.is_some_and(|n| !valid_anon_name(n.as_bytes())) {
            return Err(MmError::InvalidArgument);
        }
        let Some((addr, end)) = range else {
            return Ok(());
        };
        let mut st = self.state().write();
        if end > self.layout().task_size || !st.tree.is_covered(addr, end) {
            return Err(MmError::NoMemory);
        }
        if !st.tree.overlapping(addr, end).all(anonymous) {
            return Err(MmError::BadFile);
        }
        let name: Option<Arc<str>> = name.map(Arc::from);
        let max = self.tunables().max_map_count();
        st.tree.edit_each(addr, end, max, &mut |v: &mut Vma| {
            v.anon_name = name.clone();
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aspace::tests::{anon_rw, harness, map_shared_anon};
    use crate::frame::PAGE_SIZE;

    fn names<Q: PageTable>(
        a: &AddressSpace<Q>,
    ) -> alloc::vec::Vec<(u64, u64, Option<alloc::string::String>)> {
        a.vmas()
            .iter()
            .map(|v| {
                (
                    v.start(),
                    v.end(),
                    v.anon_name().map(alloc::string::String::from),
                )
            })
            .collect()
    }

    #[test]
    fn a_name_splits_its_vma_and_merges_back_when_removed() {
        let h = harness();
        let a = anon_rw(&h.aspace, 4);
        let before = names(&h.aspace);
        h.aspace
            .set_anon_name(a + PAGE_SIZE, 2 * PAGE_SIZE, Some("pool"))
            .unwrap();
        let named: alloc::vec::Vec<_> = names(&h.aspace)
            .into_iter()
            .filter(|(s, e, _)| *s >= a && *e <= a + 4 * PAGE_SIZE)
            .collect();
        assert_eq!(named.len(), 3, "split in three: {named:?}");
        assert_eq!(named[1].2.as_deref(), Some("pool"));
        assert_eq!((named[1].0, named[1].1), (a + PAGE_SIZE, a + 3 * PAGE_SIZE));
        h.aspace.set_anon_name(a, 4 * PAGE_SIZE, None).unwrap();
        assert_eq!(names(&h.aspace), before, "unnamed again: one VMA");
    }

    #[test]
    fn refusals_change_nothing() {
        let h = harness();
        let a = anon_rw(&h.aspace, 2);
        let before = names(&h.aspace);
        for (addr, len, name, err) in [
            (a + 1, PAGE_SIZE, Some("x"), MmError::InvalidArgument),
            (a, 8 * PAGE_SIZE, Some("x"), MmError::NoMemory),
            (a, PAGE_SIZE, Some("bad[name]"), MmError::InvalidArgument),
            (a, PAGE_SIZE, Some("tab\tname"), MmError::InvalidArgument),
            (a, u64::MAX, Some("x"), MmError::InvalidArgument),
        ] {
            assert_eq!(
                h.aspace.set_anon_name(addr, len, name),
                Err(err),
                "{name:?}"
            );
        }
        let long = "n".repeat(ANON_NAME_MAX_LEN);
        assert_eq!(
            h.aspace.set_anon_name(a, PAGE_SIZE, Some(&long)),
            Err(MmError::InvalidArgument)
        );
        assert_eq!(names(&h.aspace), before);
        assert!(h
            .aspace
            .set_anon_name(a, PAGE_SIZE, Some(&long[..ANON_NAME_MAX_LEN - 1]))
            .is_ok());
    }

    #[test]
    fn shared_anonymous_memory_takes_a_name_and_fork_keeps_it() {
        let h = harness();
        let s = map_shared_anon(&h.aspace, 2);
        h.aspace
            .set_anon_name(s, 2 * PAGE_SIZE, Some("ring"))
            .unwrap();
        let child = crate::aspace::tests::fork(&h);
        let named = |a: &AddressSpace<_>| {
            a.vmas()
                .iter()
                .find(|v| v.start() == s)
                .and_then(|v| v.anon_name().map(alloc::string::String::from))
        };
        assert_eq!(named(&h.aspace).as_deref(), Some("ring"));
        assert_eq!(named(&child).as_deref(), Some("ring"));
    }
}
