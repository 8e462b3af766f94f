//! A user address space: `mm`'s hardware-independent address space (VMA tree, fault
//! path, mmap family, fork with copy-on-write) over this CPU's page tables, plus what the
//! kernel needs around it: the TLB state for lazy switching and shootdowns, and an id for
//! futex keys.

use super::{frames::mm_frames, pagetable::X86PageTable};
use crate::arch::tlb::{self, TlbState};
use alloc::sync::Arc;
use conquer_once::spin::OnceCell;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use errno::{Errno, SysResult};
use mm::{addr::VirtAddr, aspace, pagetable::PageTable, tlb::TlbBatch};

/// Page size.
pub const PAGE: u64 = 4096;
/// Top of the main thread's stack.
pub const STACK_TOP: u64 = 0x0000_7fff_ff00_0000;
/// Initial size of the main thread's stack mapping (it grows down on faults).
pub const STACK_INITIAL_BYTES: u64 = 256 * 1024;

/// The `mm` address space over x86 tables.
pub type MmSpace = aspace::AddressSpace<X86PageTable>;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static TUNABLES: OnceCell<Arc<aspace::Tunables>> = OnceCell::uninit();

/// The live mmap knobs every address space shares (updated by the registry).
pub fn tunables() -> &'static Arc<aspace::Tunables> {
    TUNABLES.get_or_init(|| {
        let tunables = aspace::Tunables::new();
        tunables.set_hugetlb_source(Arc::new(super::hugetlb::KernelHugetlb));
        tunables
    })
}

/// `mm`'s TLB hook: a shootdown to the CPUs that have this address space loaded.
struct KernelTlb(Arc<TlbState>);

impl mm::tlb::TlbFlush for KernelTlb {
    /// One shootdown for the whole batch, over the span of its ranges: flushing the
    /// pages between them too costs less than a broadcast (and its acknowledgements)
    /// per range, and a wide span becomes a full flush anyway.
    fn flush(&self, batch: &TlbBatch) {
        if let Some((start, end)) = span(batch) {
            tlb::flush_address_space(&self.0, start, end);
        }
    }

    fn hint_flush(&self, batch: &TlbBatch) {
        if let Some((start, end)) = span(batch) {
            tlb::hint_flush_address_space(&self.0, start, end);
        }
    }
}

/// From the lowest start to the highest end of a batch's ranges.
fn span(batch: &TlbBatch) -> Option<(u64, u64)> {
    let ranges = batch.ranges();
    let start = ranges.iter().map(|r| r.start).min()?;
    let end = ranges.iter().map(|r| r.end).max()?;
    Some((start.as_u64(), end.as_u64()))
}

/// A process's address space.
pub struct AddressSpace {
    mm: MmSpace,
    tlb: Arc<TlbState>,
    id: u64,
    /// Processes that have this as their address space (Linux's `mm_users`, counted
    /// per process): a `CLONE_VM` child shares its parent's, and only the last of them
    /// to exit may tear the memory down.
    users: AtomicU32,
}

impl AddressSpace {
    fn wrap(
        make: impl FnOnce(X86PageTable, Arc<dyn mm::tlb::TlbFlush>) -> SysResult<MmSpace>,
    ) -> SysResult<Self> {
        let pt = X86PageTable::new().ok_or(Errno::ENOMEM)?;
        let state = Arc::new(TlbState::new(pt.root(), pt.user_root()));
        let mm = make(pt, Arc::new(KernelTlb(state.clone())))?;
        Ok(Self {
            mm,
            tlb: state,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            users: AtomicU32::new(0),
        })
    }

    /// An empty address space with `layout`.
    pub fn new(layout: aspace::Layout) -> SysResult<Self> {
        Self::wrap(|pt, tlb| {
            Ok(aspace::AddressSpace::new(
                pt,
                mm_frames().clone(),
                tlb,
                tunables().clone(),
                layout,
            ))
        })
    }

    /// A copy-on-write child for fork.
    pub fn fork(&self) -> SysResult<Self> {
        Self::wrap(|pt, tlb| self.mm.fork(pt, tlb).map_err(Errno::from))
    }

    /// The `mm` address space (all mapping operations and faults).
    pub fn mm(&self) -> &MmSpace {
        &self.mm
    }

    /// The TLB state (loaded-on and shootdown targets).
    pub fn tlb_state(&self) -> &TlbState {
        &self.tlb
    }

    /// A unique id (futex keys).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// One more process uses this address space.
    pub fn add_user(&self) {
        self.users.fetch_add(1, Ordering::AcqRel);
    }

    /// A process stopped using this address space; true when it was the last one.
    pub fn drop_user(&self) -> bool {
        self.users.fetch_sub(1, Ordering::AcqRel) == 1
    }

    /// The frame backing `addr` if it is mapped (no fault).
    pub fn frame_of(&self, addr: u64) -> Option<u64> {
        self.mm
            .page_table()
            .query(VirtAddr::new(addr).page_base())
            .map(|p| p.pfn.0 * PAGE)
    }

    /// Copies between `buf` and this address space at `addr` (another process's memory);
    /// returns the bytes moved before the first page that cannot be accessed.
    pub fn access(&self, addr: u64, buf: &mut [u8], write: bool) -> usize {
        let mut done = 0;
        while done < buf.len() {
            // A range running off the top of the address space stops there.
            let Some(at) = addr.checked_add(done as u64) else {
                break;
            };
            let n = ((PAGE - (at & (PAGE - 1))) as usize).min(buf.len() - done);
            let ok = if write {
                self.mm.write_bytes(at, &buf[done..done + n])
            } else {
                self.mm.read_bytes(at, &mut buf[done..done + n])
            };
            if ok.is_err() {
                break;
            }
            done += n;
        }
        done
    }
}

impl Drop for AddressSpace {
    fn drop(&mut self) {
        // Frames first (with a shootdown to lazy CPUs), then move every CPU off the tables;
        // the tables themselves go when `mm` (and its X86PageTable) drops.
        self.mm.teardown();
        tlb::release(&self.tlb);
    }
}
