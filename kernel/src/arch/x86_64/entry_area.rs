//! The CPU entry area: everything the CPU and the entry code touch before they switch to
//! the kernel's page tables (the IDT, each CPU's GDT, TSS, trap and IST stacks and its
//! per-CPU block) lives in dedicated pages mapped at a fixed kernel address. Kernel tables
//! and, under KPTI, the otherwise empty kernel half of user tables share this mapping, so
//! user tables expose nothing else of the kernel.

use super::paging::phys_offset;
use alloc::alloc::{alloc_zeroed, dealloc, Layout};
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;

/// Base of the entry area (PML4 slot 509).
pub const ENTRY_AREA_BASE: u64 = 0xffff_fe80_0000_0000;
/// PML4 index of the entry area.
pub const ENTRY_AREA_PML4_INDEX: usize = 509;
/// Bytes reserved per CPU (its block, GDT/TSS page, trap and IST stacks).
const CPU_AREA_BYTES: u64 = 256 * 1024;
/// The first CPU area starts after the shared pages (the IDT).
const CPU_AREAS_START: u64 = ENTRY_AREA_BASE + CPU_AREA_BYTES;

/// Page-table entry bits.
pub(super) const PRESENT: u64 = 1;
const WRITABLE: u64 = 2;
const NO_EXECUTE: u64 = 1 << 63;
const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Physical address of the entry area's PDPT (0 before `init`).
static PDPT: AtomicU64 = AtomicU64::new(0);
/// Next free offset inside each CPU's area, and in the shared area.
static CURSORS: Mutex<[u64; sched::MAX_CPUS + 1]> = Mutex::new([0; sched::MAX_CPUS + 1]);

/// `count` zeroed heap pages, by physical address (through the direct map). The entry
/// area's pages live forever; KPTI frees its user roots with [`free_heap_page`].
pub(super) fn heap_pages(count: usize) -> u64 {
    try_heap_pages(count).expect("no memory for entry-area or KPTI tables")
}

/// Like [`heap_pages`], `None` when the heap has no room (a user address space's KPTI
/// table: its creation fails with ENOMEM instead).
pub(super) fn try_heap_pages(count: usize) -> Option<u64> {
    let layout = Layout::from_size_align(count * 4096, 4096).ok()?;
    // SAFETY: non-zero size.
    let ptr = unsafe { alloc_zeroed(layout) };
    (!ptr.is_null()).then(|| ptr as u64 - phys_offset())
}

/// Frees one page from [`heap_pages`]`(1)`.
///
/// # Safety
/// `phys` came from `heap_pages(1)`, is freed once, and no page table refers to it.
pub(super) unsafe fn free_heap_page(phys: u64) {
    let layout = Layout::from_size_align(4096, 4096).expect("page layout");
    // SAFETY: the caller's contract: a live single-page allocation of this layout.
    unsafe { dealloc((phys + phys_offset()) as *mut u8, layout) };
}

/// The page table at `phys` (a [`heap_pages`] page), through the direct map.
pub(super) fn table(phys: u64) -> &'static mut [u64; 512] {
    // SAFETY: entry-area and KPTI tables are heap pages reached through the direct map;
    // the entry area's change only under the CURSORS lock, KPTI's are built before use.
    unsafe { &mut *((phys + phys_offset()) as *mut [u64; 512]) }
}

/// Maps the 4 KiB page at `va` under the PDPT at `pdpt` with the leaf entry `leaf`,
/// creating the directory and table levels (present, writable) as needed.
pub(super) fn map_4k(pdpt: u64, va: u64, leaf: u64) {
    let mut t = pdpt;
    for level in [2u32, 1] {
        let e = &mut table(t)[((va >> (12 + 9 * level)) & 511) as usize];
        if *e & PRESENT == 0 {
            *e = heap_pages(1) | PRESENT | WRITABLE;
        }
        t = *e & ADDRESS_MASK;
    }
    table(t)[((va >> 12) & 511) as usize] = leaf;
}

/// Creates the entry area's PDPT and installs it in the kernel root at `root_phys`.
pub fn init(root_phys: u64) {
    let pdpt = heap_pages(1);
    PDPT.store(pdpt, Ordering::SeqCst);
    table(root_phys)[ENTRY_AREA_PML4_INDEX] = pdpt | PRESENT | WRITABLE;
}

/// The PML4 entry that maps the entry area (for user tables under KPTI).
pub fn pml4_entry() -> u64 {
    PDPT.load(Ordering::SeqCst) | PRESENT | WRITABLE
}

fn map(va: u64, phys: u64) {
    map_4k(
        PDPT.load(Ordering::SeqCst),
        va,
        phys | PRESENT | WRITABLE | NO_EXECUTE,
    );
}

/// Allocates `pages` zeroed pages in the area of `cpu` (`None`: the shared area) and
/// returns their entry-area address.
pub fn alloc(cpu: Option<usize>, pages: usize) -> *mut u8 {
    let mut cursors = CURSORS.lock();
    let slot = cpu.map_or(sched::MAX_CPUS, |c| c);
    let base = match cpu {
        Some(c) => CPU_AREAS_START + c as u64 * CPU_AREA_BYTES,
        None => ENTRY_AREA_BASE,
    };
    let offset = cursors[slot];
    assert!(
        offset + pages as u64 * 4096 <= CPU_AREA_BYTES,
        "entry area full"
    );
    cursors[slot] = offset + pages as u64 * 4096;
    let phys = heap_pages(pages);
    for i in 0..pages as u64 {
        map(base + offset + i * 4096, phys + i * 4096);
    }
    (base + offset) as *mut u8
}
