//! The address-space side of KSM (see [`crate::ksm`]): scanning the mergeable VMAs
//! and breaking merges.

use super::AddressSpace;
use crate::addr::VirtAddr;
use crate::fault::vma_pte_perms;
use crate::ksm::Verdict;
use crate::pagetable::{PageTable, Pte, PteFlags};
use crate::phys::PAGE_BYTES;
use crate::tlb::TlbBatch;
use crate::vma::{Backing, VmFlags};
use alloc::vec::Vec;

impl<P: PageTable> AddressSpace<P> {
    /// One KSM pass over the private anonymous pages of this address space's
    /// `MADV_MERGEABLE` VMAs (part of a pass the caller opens and closes on the shared
    /// [`Ksm`](crate::ksm::Ksm)); returns the pages merged.
    pub fn ksm_scan(&self) -> usize {
        let ksm = self.tunables().ksm().clone();
        let frames = self.frames().clone();
        let pt = self.page_table();
        let st = self.state().read();
        let mut merged = 0;
        for v in st.tree.iter().filter(|v| {
            v.flags.contains(VmFlags::MERGEABLE)
                && matches!(v.backing, Backing::Anon)
                && v.hugetlb.is_none()
        }) {
            // Pin every page only this mapping owns and write-protect it: once the
            // flush is done, nobody can change its contents (a write copies it).
            let mut candidates = Vec::new();
            pt.scan(
                VirtAddr::new(v.start),
                VirtAddr::new(v.end),
                &mut |va, pte| {
                    if !pte.flags.contains(PteFlags::BUSY) && frames.count(pte.pfn) == 1 {
                        candidates.push((va, pte));
                    }
                },
            );
            let mut protect = TlbBatch::new();
            let mut pinned = Vec::with_capacity(candidates.len());
            for (va, pte) in candidates {
                frames.get(pte.pfn);
                let ro = pte.with_flags(pte.flags - PteFlags::WRITE);
                if pt.replace(va, pte, ro).is_err() {
                    frames.put(pte.pfn);
                    continue;
                }
                if pte.flags.contains(PteFlags::WRITE) {
                    protect.add_page(va);
                }
                pinned.push((va, ro));
            }
            protect.flush(&**self.tlb());

            let mut remapped = TlbBatch::new();
            let mut release = Vec::new();
            let mut contents = alloc::vec![0u8; PAGE_BYTES];
            for (va, ro) in pinned {
                frames.read(ro.pfn, 0, &mut contents);
                match ksm.classify(&frames, ro.pfn, &contents) {
                    Verdict::MergeInto(k) => {
                        if pt.replace(va, ro, Pte::new(k, ro.flags)).is_ok() {
                            remapped.add_page(va);
                            release.push(ro.pfn);
                            merged += 1;
                        } else {
                            frames.put(k);
                        }
                        release.push(ro.pfn);
                    }
                    Verdict::Promoted => {}
                    Verdict::Keep => release.push(ro.pfn),
                }
            }
            // Old frames go only after no TLB can still read them.
            remapped.flush(&**self.tlb());
            for pfn in release {
                frames.put(pfn);
            }
        }
        merged
    }

    /// Gives every mapping of a KSM frame in `[start, end)` a private, writable copy
    /// (`run` = 2, `MADV_UNMERGEABLE`). A page that cannot be copied for want of
    /// memory stays merged.
    ///
    /// An entry locked (`BUSY`) when the range is scanned, or changed before its copy
    /// is switched in, may be a stable frame in the middle of a move to another node
    /// (`migrate_ksm.rs` locks every mapping of it, then points them all at the new
    /// stable frame): it is waited for and looked at again once it is idle, so no
    /// merged entry is left behind (Linux's `break_ksm` likewise waits for a page
    /// under migration).
    pub fn ksm_unmerge(&self, start: u64, end: u64) {
        let ksm = self.tunables().ksm().clone();
        let frames = self.frames().clone();
        let pt = self.page_table();
        let st = self.state().read();
        let mut batch = TlbBatch::new();
        let mut release = Vec::new();
        for v in st
            .tree
            .overlapping(start, end)
            .filter(|v| matches!(v.backing, Backing::Anon))
        {
            let (lo, hi) = (v.start.max(start), v.end.min(end));
            let mut merged = Vec::new();
            let mut in_flight = Vec::new();
            pt.scan(VirtAddr::new(lo), VirtAddr::new(hi), &mut |va, pte| {
                if pte.flags.contains(PteFlags::BUSY) {
                    in_flight.push(va);
                } else if ksm.is_stable(pte.pfn) {
                    merged.push((va, pte));
                }
            });
            // Writable at once but clean, as Linux's unshare copy is clean until
            // written (numa_maps' and smaps' dirty counts; the MMU sets the bit).
            let writable = vma_pte_perms(v.flags) | PteFlags::ACCESSED;
            for (va, pte) in merged {
                match self.unmerge_entry(va, pte, writable, &mut batch, &mut release) {
                    Unmerge::Raced => in_flight.push(va),
                    Unmerge::Done | Unmerge::NoMemory => {}
                }
            }
            for va in in_flight {
                ksm.note_unmerge_wait();
                self.unmerge_when_idle(&ksm, va, writable, &mut batch, &mut release);
            }
        }
        batch.flush(&**self.tlb());
        for pfn in release {
            frames.put(pfn);
        }
    }

    /// Waits until the entry at `va` is not `BUSY`, then unmerges it if it maps a
    /// stable frame (again after each lost race).
    fn unmerge_when_idle(
        &self,
        ksm: &crate::ksm::Ksm,
        va: VirtAddr,
        writable: PteFlags,
        batch: &mut TlbBatch,
        release: &mut Vec<crate::frame::Pfn>,
    ) {
        let mut backoff = crate::cpu::Backoff::new();
        loop {
            // Unmapped or swapped out meanwhile: nothing maps a stable frame here.
            let Some(pte) = self.page_table().query(va) else {
                return;
            };
            if pte.flags.contains(PteFlags::BUSY) {
                backoff.snooze();
                continue;
            }
            if !ksm.is_stable(pte.pfn) {
                return;
            }
            match self.unmerge_entry(va, pte, writable, batch, release) {
                Unmerge::Raced => backoff.snooze(),
                Unmerge::Done | Unmerge::NoMemory => return,
            }
        }
    }

    /// Points the entry `pte` at `va` (mapping a stable frame) at a private copy
    /// with `writable` permissions; the stable frame's reference goes on `release`
    /// (dropped after `batch` is flushed).
    fn unmerge_entry(
        &self,
        va: VirtAddr,
        pte: Pte,
        writable: PteFlags,
        batch: &mut TlbBatch,
        release: &mut Vec<crate::frame::Pfn>,
    ) -> Unmerge {
        let frames = self.frames();
        let Ok(copy) = frames.alloc_copy(pte.pfn, va) else {
            return Unmerge::NoMemory;
        };
        if self
            .page_table()
            .replace(va, pte, Pte::new(copy, writable))
            .is_ok()
        {
            batch.add_page(va);
            release.push(pte.pfn);
            Unmerge::Done
        } else {
            frames.put(copy);
            Unmerge::Raced
        }
    }
}

/// What one unmerge of an entry did.
enum Unmerge {
    /// The entry maps its own copy now.
    Done,
    /// No frame for the copy: the entry stays merged.
    NoMemory,
    /// The entry changed since it was read (locked for a move, copied by a fault):
    /// look again.
    Raced,
}
