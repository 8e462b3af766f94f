//! The page-table abstraction: the [`PageTable`] trait the address-space and fault
//! code is written against, with [`Pte`]s in architecture-neutral form. The kernel
//! implements it over x86_64 4-level tables; [`SoftPageTable`] implements it in
//! software for host tests.
//!
//! Every method takes `&self`: an implementation makes single-entry updates atomic
//! (compare-and-swap on the entry word) and installs missing intermediate tables with
//! compare-and-swap too, so faults on different pages never share a lock.
//! Multi-entry operations (unmap or protect a range, fork) are serialised by the
//! caller holding its VMA tree for writing.

mod soft;

pub use soft::SoftPageTable;

use bitflags::bitflags;

use crate::frame::Pfn;
use crate::swap::SwapEntry;

bitflags! {
    /// Architecture-neutral leaf-entry flags.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct PteFlags: u8 {
        /// Userland may read (absent: the frame stays attached but every access
        /// faults, as for `PROT_NONE`; x86 encodes it with P=0 and a software bit).
        const READ = 1 << 0;
        /// Userland may write.
        const WRITE = 1 << 1;
        /// Userland may execute (absent: NX).
        const EXEC = 1 << 2;
        /// The hardware has used the entry since the flag was cleared.
        const ACCESSED = 1 << 3;
        /// The page has been written through this entry.
        const DIRTY = 1 << 4;
        /// Software lock bit (ignored by the hardware; x86 keeps it in an available
        /// bit): a fault holds it while it copies the entry's frame, so nothing else
        /// replaces the entry or releases the frame meanwhile. Others seeing it retry.
        const BUSY = 1 << 5;
    }
}

impl PteFlags {
    /// The permission bits.
    pub const PERMS: PteFlags = PteFlags::READ.union(PteFlags::WRITE).union(PteFlags::EXEC);
    /// The bits the hardware sets.
    pub const HW: PteFlags = PteFlags::ACCESSED.union(PteFlags::DIRTY);
}

/// A leaf entry that maps a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pte {
    /// The frame.
    pub pfn: Pfn,
    /// Its flags.
    pub flags: PteFlags,
}

impl Pte {
    /// An entry mapping `pfn` with `flags`.
    pub const fn new(pfn: Pfn, flags: PteFlags) -> Pte {
        Pte { pfn, flags }
    }

    /// The same entry with other flags.
    pub const fn with_flags(self, flags: PteFlags) -> Pte {
        Pte {
            pfn: self.pfn,
            flags,
        }
    }
}

/// Why [`PageTable::install`] did not install the entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallError {
    /// An entry is already there (another fault won the race); it is returned.
    Occupied(Pte),
    /// An intermediate table could not be allocated.
    NoMemory,
}

/// A user page table (the lower half of one address space). All addresses are
/// page-aligned user virtual addresses.
pub trait PageTable: Send + Sync {
    /// The entry mapping `va`, if any.
    fn query(&self, va: u64) -> Option<Pte>;

    /// Installs `pte` at `va` if no entry is there (compare-and-swap from empty),
    /// creating intermediate tables as needed.
    fn install(&self, va: u64, pte: Pte) -> Result<(), InstallError>;

    /// Replaces the entry at `va` with `new` if it is exactly `expected`
    /// (compare-and-swap); otherwise returns what is there.
    fn replace(&self, va: u64, expected: Pte, new: Pte) -> Result<(), Option<Pte>>;

    /// Removes the entry at `va`, returning it.
    fn unmap(&self, va: u64) -> Option<Pte>;

    /// Calls `f` with every entry in `[start, end)`, in address order. `f` may change
    /// the entry it is given through this table.
    fn scan(&self, start: u64, end: u64, f: &mut dyn FnMut(u64, Pte));

    /// Copies every entry in `[start, end)` into `child` (whose range is empty) for
    /// a fork. With `write_protect`, WRITE is cleared in the parent's entry first and
    /// the child gets the read-only copy. `on_copy(va, pte, weakened)` is called once
    /// each entry is in the child, with the entry as copied and whether the parent's
    /// entry lost WRITE; it takes the frame's reference (the caller holds the
    /// parent's VMA tree for writing, so nothing releases the frame meanwhile).
    /// `NoMemory` if a child table cannot be allocated; entries copied so far stay in
    /// the child, and an entry that could not be copied may have lost WRITE in the
    /// parent unreported (harmless: its frame is shared with nobody new).
    ///
    /// The default goes entry by entry through `scan`, `update_flags` and `install`;
    /// a hardware table does it in one pass per table page.
    fn fork_range(
        &self,
        child: &Self,
        start: u64,
        end: u64,
        write_protect: bool,
        on_copy: &mut dyn FnMut(u64, Pte, bool),
    ) -> Result<(), InstallError>
    where
        Self: Sized,
    {
        let mut result = Ok(());
        self.scan(start, end, &mut |va, pte| {
            if result.is_err() {
                return;
            }
            let mut pte = pte;
            let weakened = write_protect && pte.flags.contains(PteFlags::WRITE);
            if weakened {
                if let Some(old) = self.update_flags(va, &mut |f| f - PteFlags::WRITE) {
                    pte = old.with_flags(old.flags - PteFlags::WRITE);
                }
            }
            result = match child.install(va, pte) {
                Ok(()) => {
                    on_copy(va, pte, weakened);
                    Ok(())
                }
                Err(InstallError::Occupied(_)) | Err(InstallError::NoMemory) => {
                    Err(InstallError::NoMemory)
                }
            };
        });
        result
    }

    /// Bytes of memory the table's own pages use (`VmPTE`); 0 if unknown.
    fn table_bytes(&self) -> u64 {
        0
    }

    /// Installs `pte` at `va` whatever is there, returning the old entry.
    fn map(&self, va: u64, pte: Pte) -> Result<Option<Pte>, InstallError> {
        loop {
            match self.install(va, pte) {
                Ok(()) => return Ok(None),
                Err(InstallError::NoMemory) => return Err(InstallError::NoMemory),
                Err(InstallError::Occupied(old)) => {
                    if self.replace(va, old, pte).is_ok() {
                        return Ok(Some(old));
                    }
                }
            }
        }
    }

    /// Sets the flags of the entry at `va` to `f(old flags)`, keeping its frame;
    /// returns the old entry (`None`, changing nothing, if there is none).
    fn update_flags(&self, va: u64, f: &mut dyn FnMut(PteFlags) -> PteFlags) -> Option<Pte> {
        loop {
            let old = self.query(va)?;
            let new = old.with_flags(f(old.flags));
            if new == old || self.replace(va, old, new).is_ok() {
                return Some(old);
            }
        }
    }

    /// Sets the permission bits of the entry at `va` to `perms` (keeping its frame
    /// and hardware bits); returns the old entry.
    fn protect(&self, va: u64, perms: PteFlags) -> Option<Pte> {
        self.update_flags(va, &mut |f| {
            (f - PteFlags::PERMS) | (perms & PteFlags::PERMS)
        })
    }

    /// The swap entry held by the not-present entry at `va`, if it holds one. Swap
    /// entries are invisible to every other method ([`query`](Self::query) and
    /// [`scan`](Self::scan) skip them); a table without swap support holds none.
    fn query_swap(&self, _va: u64) -> Option<SwapEntry> {
        None
    }

    /// Replaces the present entry at `va` with `swap` if it is exactly `expected`
    /// (compare-and-swap, the page's swap-out); otherwise returns what is there.
    fn install_swap(&self, va: u64, _expected: Pte, _swap: SwapEntry) -> Result<(), Option<Pte>> {
        Err(self.query(va))
    }

    /// Replaces the swap entry `swap` at `va` with the present `pte` (the page's
    /// swap-in); false, changing nothing, if something else is there.
    fn restore_swap(&self, _va: u64, _swap: SwapEntry, _pte: Pte) -> bool {
        false
    }

    /// Puts `swap` into the empty entry at `va` (a fork's child, an mremap move).
    fn place_swap(&self, _va: u64, _swap: SwapEntry) -> Result<(), InstallError> {
        Err(InstallError::NoMemory)
    }

    /// Removes the swap entry at `va`, returning it (`None`, changing nothing, if
    /// the entry is not a swap entry).
    fn take_swap(&self, _va: u64) -> Option<SwapEntry> {
        None
    }

    /// Calls `f` with every swap entry in `[start, end)`, in address order.
    fn scan_swap(&self, _start: u64, _end: u64, _f: &mut dyn FnMut(u64, SwapEntry)) {}

    /// Number of entries in `[start, end)`.
    fn count(&self, start: u64, end: u64) -> u64 {
        let mut n = 0;
        self.scan(start, end, &mut |_, _| n += 1);
        n
    }
}
