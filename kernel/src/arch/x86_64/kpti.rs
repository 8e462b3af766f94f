//! Kernel page-table isolation. Under KPTI every address space has a second top-level
//! table for user mode that maps the user half and, of the kernel, only the CPU entry area
//! and the entry code; the entry code switches to the kernel table on every entry from
//! user mode and back on every exit. The switch costs a full TLB flush here (no PCID under
//! TCG), so `kpti=auto` (the default) enables it only on CPUs affected by Meltdown, as
//! Linux does; `kpti=on` and `kpti=off` force it.

use super::{entry_area, paging};
use alloc::alloc::{alloc_zeroed, Layout};
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

fn page() -> u64 {
    // SAFETY: a non-zero, page-aligned layout; these tables live forever.
    let ptr = unsafe { alloc_zeroed(Layout::from_size_align(4096, 4096).expect("layout")) };
    assert!(!ptr.is_null(), "no memory for KPTI tables");
    ptr as u64 - paging::phys_offset()
}

fn table(phys: u64) -> &'static mut [u64; 512] {
    // SAFETY: KPTI tables are heap pages reached through the direct map, built once here.
    unsafe { &mut *((phys + paging::phys_offset()) as *mut [u64; 512]) }
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
    let pdpt = page();
    let mut va = start;
    while va < end {
        let mut t = pdpt;
        for level in [2u32, 1] {
            let e = &mut table(t)[((va >> (12 + 9 * level)) & 511) as usize];
            if *e & 1 == 0 {
                *e = page() | 0x3;
            }
            t = *e & 0x000f_ffff_ffff_f000;
        }
        // Present, read-only, executable, supervisor.
        table(t)[((va >> 12) & 511) as usize] = paging::image_virt_to_phys(va) | 0x1;
        va += 4096;
    }
    ENTRY_TEXT_PML4E.store(pdpt | 0x3, Ordering::SeqCst);
}

/// A user top-level table for an address space whose kernel table is `kernel_root`: the
/// user half is filled in as the kernel table gains entries ([`sync`]).
pub fn new_user_root(kernel_root: u64) -> u64 {
    let root = page();
    let t = table(root);
    t[..256].copy_from_slice(&table(kernel_root)[..256]);
    t[entry_area::ENTRY_AREA_PML4_INDEX] = entry_area::pml4_entry();
    t[511] = ENTRY_TEXT_PML4E.load(Ordering::SeqCst);
    root
}

/// Copies user-half PML4 entry `index` from the kernel table to the user table.
pub fn sync(kernel_root: u64, user_root: u64, index: usize) {
    if index < 256 {
        table(user_root)[index] = table(kernel_root)[index];
    }
}

/// Frees a user table (its lower levels belong to the kernel table).
pub fn free_user_root(user_root: u64) {
    let layout = Layout::from_size_align(4096, 4096).expect("layout");
    // SAFETY: `user_root` came from `page()` (a heap allocation of this layout) and no CPU
    // uses it any more (the address space is being torn down after `tlb::release`).
    unsafe { alloc::alloc::dealloc((user_root + paging::phys_offset()) as *mut u8, layout) };
}
