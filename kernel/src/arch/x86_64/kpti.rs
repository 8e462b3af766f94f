//! Kernel page-table isolation. Under KPTI every address space has a second top-level
//! table for user mode that maps the user half and, of the kernel, only the CPU entry area
//! and the entry code; the entry code switches to the kernel table on every entry from
//! user mode and back on every exit. The switch costs a full TLB flush here (no PCID under
//! TCG), so `kpti=auto` (the default) enables it only on CPUs affected by Meltdown, as
//! Linux does; `kpti=on` and `kpti=off` force it.

use super::{
    entry_area::{self, heap_pages, table, try_heap_pages},
    paging,
};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(false);
/// PML4 entry mapping the entry code at its (relocated) image address, for user tables.
static ENTRY_TEXT_PML4E: AtomicU64 = AtomicU64::new(0);

/// Whether KPTI is on.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The `kpti=` setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Follow the CPU's Meltdown status.
    Auto,
    /// Always.
    On,
    /// Never.
    Off,
}

unsafe extern "C" {
    static __entry_text_start: u8;
    static __entry_text_end: u8;
}

/// Decides KPTI for this boot (before any CPU sets CR4).
pub fn init(mode: Mode, meltdown: bool) {
    let on = match mode {
        Mode::Auto => meltdown,
        Mode::On => true,
        Mode::Off => false,
    };
    ENABLED.store(on, Ordering::SeqCst);
}

/// Builds the shared mapping of the entry code for user tables (after the heap exists).
pub fn build_entry_text() {
    if !enabled() {
        return;
    }
    let start = &raw const __entry_text_start as u64;
    let end = &raw const __entry_text_end as u64;
    let pdpt = heap_pages(1);
    let mut va = start;
    while va < end {
        // Present, read-only, executable, supervisor.
        entry_area::map_4k(
            pdpt,
            va,
            paging::image_virt_to_phys(va) | entry_area::PRESENT,
        );
        va += 4096;
    }
    ENTRY_TEXT_PML4E.store(pdpt | 0x3, Ordering::SeqCst);
}

/// A user top-level table for an address space whose kernel table is `kernel_root`: the
/// user half is filled in as the kernel table gains entries ([`sync`]). `None` when the
/// heap has no room for it.
pub fn new_user_root(kernel_root: u64) -> Option<u64> {
    let root = try_heap_pages(1)?;
    let t = table(root);
    t[..256].copy_from_slice(&table(kernel_root)[..256]);
    t[entry_area::ENTRY_AREA_PML4_INDEX] = entry_area::pml4_entry();
    t[511] = ENTRY_TEXT_PML4E.load(Ordering::SeqCst);
    Some(root)
}

/// Copies user-half PML4 entry `index` from the kernel table to the user table.
pub fn sync(kernel_root: u64, user_root: u64, index: usize) {
    if index < 256 {
        table(user_root)[index] = table(kernel_root)[index];
    }
}

/// Frees a user table (its lower levels belong to the kernel table).
pub fn free_user_root(user_root: u64) {
    // SAFETY: `user_root` came from `heap_pages(1)` in `new_user_root`, and no CPU uses it
    // any more (the address space is being torn down after `tlb::release`).
    unsafe { entry_area::free_heap_page(user_root) };
}
