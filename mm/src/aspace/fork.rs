//! `fork`: the child gets a copy of every VMA (except `MADV_DONTFORK` ones) and
//! shares every frame: shared mappings keep their entries as they are; private
//! entries become read-only in both parent and child, so the first write on either
//! side copies (copy-on-write). `MADV_WIPEONFORK` VMAs start empty in the child.
//! Userfaultfd registrations are not inherited.

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::zap::Zap;
use super::AddressSpace;
use crate::addr::VirtAddr;
use crate::errno::MmError;
use crate::pagetable::PageTable;
use crate::tlb::TlbFlush;
use crate::vma::{VmFlags, Vma, VmaTree};

impl<P: PageTable> AddressSpace<P> {
    /// Duplicates the address space into `child_pt` (an empty table) for a fork; the
    /// child flushes through `child_tlb`. `ENOMEM` if the child's tables cannot be
    /// allocated (the partial child is torn down).
    pub fn fork(
        &self,
        child_pt: P,
        child_tlb: Arc<dyn TlbFlush>,
    ) -> Result<AddressSpace<P>, MmError> {
        let st = self.state().write();
        let child = AddressSpace::new(
            child_pt,
            self.frames().clone(),
            child_tlb,
            self.tunables().clone(),
            self.layout(),
        );
        let vmas: Vec<Vma> = st
            .tree
            .iter()
            .filter(|v| !v.flags.contains(VmFlags::DONTCOPY))
            .map(|v| {
                let mut c = v.clone();
                c.interceptor = None;
                c.intercept_modes = 0;
                // Locks are not inherited (Linux's dup_mmap); seals are.
                c.flags -= VmFlags::LOCKED_MASK;
                c.hugetlb = v.hugetlb.as_ref().map(|m| m.for_fork_child());
                c
            })
            .collect();
        if self.thp_advised.load(core::sync::atomic::Ordering::Relaxed) {
            child.note_thp_advised();
        }
        // The child's private writable memory is charged before anything is copied.
        let tree = VmaTree::from_sorted(vmas, st.tree.commitment().cloned())?;
        // Parent entries write-protected here are flushed once, at the end (on the
        // error path too: the zap's drop flushes).
        let mut parent_flush = Zap::new(self.frames(), &**self.tlb());
        let (pt, cpt) = (self.page_table(), child.page_table());
        let mut failed = false;
        for v in tree
            .iter()
            .filter(|v| !v.flags.contains(VmFlags::WIPEONFORK))
        {
            let private = !v.flags.contains(VmFlags::MAYSHARE);
            if v.hugetlb.is_some() {
                if self
                    .fork_hugetlb(cpt, v, private, &mut parent_flush)
                    .is_err()
                {
                    failed = true;
                    break;
                }
                continue;
            }
            let copied = pt.fork_range(
                cpt,
                VirtAddr::new(v.start),
                VirtAddr::new(v.end),
                private,
                &mut |va, pte, weakened| {
                    if weakened {
                        parent_flush.weakened(va.as_u64());
                    }
                    self.frames().get(pte.pfn);
                },
            );
            // Swap entries too (a hardware table's copy took them without counting).
            let swapped = !private || self.fork_swap(cpt, v.start, v.end);
            if copied.is_err() || !swapped {
                failed = true;
                break;
            }
        }
        parent_flush.finish();
        {
            let mut cst = child.state().write();
            cst.tree = tree;
            cst.start_brk = st.start_brk;
            cst.brk = st.brk;
            cst.start_stack = st.start_stack;
            cst.start_code = st.start_code;
            cst.end_code = st.end_code;
            cst.arg_range = st.arg_range;
            cst.hiwater_vm_pages = st.hiwater_vm_pages;
            cst.pkeys = st.pkeys;
            child.set_task_policy(self.task_policy());
            child.set_thp_disabled(self.thp_disabled());
        }
        if failed {
            return Err(MmError::NoMemory);
        }
        Ok(child)
    }
}

impl<P: PageTable> AddressSpace<P> {
    /// Copies the hugetlb leaves of `v` into the child: each page gains a
    /// reference; a private one becomes read-only on both sides (a write copies).
    fn fork_hugetlb(
        &self,
        cpt: &P,
        v: &Vma,
        private: bool,
        parent_flush: &mut Zap<'_>,
    ) -> Result<(), MmError> {
        use crate::pagetable::{PteFlags, HUGE_SIZE};
        let pt = self.page_table();
        let mut result = Ok(());
        // The page whose leaves are left out: one its file no longer has (dropped by
        // a truncation or a hole punch whose unmapping has not reached this space yet).
        let mut stale_page = None;
        pt.scan_leaves(
            VirtAddr::new(v.start),
            VirtAddr::new(v.end),
            &mut |va, _, huge| {
                if !huge || result.is_err() {
                    return;
                }
                let Some(mut leaf) = pt.query_huge(va) else {
                    return;
                };
                if let Some(map) = &v.hugetlb {
                    let start = map.page_start(va.as_u64());
                    if start == va.as_u64() {
                        stale_page = map.leaf_is_stale(va.as_u64(), leaf.pfn).then_some(start);
                    }
                    if stale_page == Some(start) {
                        return;
                    }
                }
                while private && leaf.flags.contains(PteFlags::WRITE) {
                    let ro = leaf.with_flags(leaf.flags - PteFlags::WRITE);
                    match pt.replace_huge(va, leaf, ro) {
                        Ok(()) => {
                            leaf = ro;
                            parent_flush.weakened_range(va.as_u64(), (va + HUGE_SIZE).as_u64());
                        }
                        Err(Some(now)) => leaf = now,
                        Err(None) => return,
                    }
                }
                let copy = leaf.with_flags(leaf.flags - PteFlags::BUSY);
                let first_leaf = v
                    .hugetlb
                    .as_ref()
                    .is_some_and(|m| m.page_start(va.as_u64()) == va.as_u64());
                match cpt.install_huge(va, copy) {
                    // A page of several leaves holds its reference on the first.
                    Ok(()) if first_leaf => self.frames().get(leaf.pfn),
                    Ok(()) => {}
                    Err(_) => result = Err(MmError::NoMemory),
                }
            },
        );
        result
    }
}

#[cfg(test)]
mod tests {
    use crate::addr::VirtAddr;
    use crate::aspace::tests::{anon_rw, fork, harness, map_shared_anon};
    use crate::aspace::Advice;
    use crate::frame::PAGE_SIZE;
    use crate::pagetable::{PageTable, PteFlags};

    #[test]
    fn shares_frames_and_write_protects_private() {
        let h = harness();
        let a = anon_rw(&h.aspace, 2);
        let s = map_shared_anon(&h.aspace, 1);
        h.aspace.write_bytes(a, b"p").unwrap();
        h.aspace.write_bytes(s, b"s").unwrap();
        let live = h.soft.live();
        let flushes = h.tlb.flushes();
        let child = fork(&h);
        assert_eq!(h.soft.live(), live, "nothing copied at fork");
        assert_eq!(h.tlb.flushes(), flushes + 1);
        assert!(!h
            .aspace
            .page_table()
            .query(VirtAddr::new(a))
            .unwrap()
            .flags
            .contains(PteFlags::WRITE));
        assert!(
            h.aspace
                .page_table()
                .query(VirtAddr::new(s))
                .unwrap()
                .flags
                .contains(PteFlags::WRITE),
            "shared stays writable"
        );
        child.write_bytes(s, b"S").unwrap();
        let mut b = [0u8];
        h.aspace.read_bytes(s, &mut b).unwrap();
        assert_eq!(&b, b"S");
        assert_eq!(child.vmas().len(), h.aspace.vmas().len());
        child.check_invariants().unwrap();
        drop(child);
        assert_eq!(h.soft.live(), live);
    }

    #[test]
    fn dontfork_and_wipeonfork() {
        let h = harness();
        let a = anon_rw(&h.aspace, 1);
        let b = anon_rw(&h.aspace, 3);
        h.aspace.write_bytes(a, b"a").unwrap();
        h.aspace.write_bytes(b, b"bb").unwrap();
        h.aspace.madvise(a, PAGE_SIZE, Advice::DontFork).unwrap();
        h.aspace
            .madvise(b + PAGE_SIZE, PAGE_SIZE, Advice::WipeOnFork)
            .unwrap();
        h.aspace.write_bytes(b + PAGE_SIZE, b"w").unwrap();
        let child = fork(&h);
        assert!(child.vma_at(a).is_none());
        let mut x = [9u8];
        child.read_bytes(b + PAGE_SIZE, &mut x).unwrap();
        assert_eq!(x, [0], "wiped");
        child.read_bytes(b, &mut x).unwrap();
        assert_eq!(&x, b"b");
    }
}
