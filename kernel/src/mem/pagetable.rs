//! Hardware page tables of user address spaces: a 4-level walk over raw entries reached
//! through the direct map. The kernel half (PML4 entries 256-511) is shared with the
//! kernel's own tables.

use super::frames;
use crate::arch::paging::{current_root, phys_to_virt};

/// Entry flags.
pub mod flags {
    /// Present.
    pub const PRESENT: u64 = 1 << 0;
    /// Writable.
    pub const WRITABLE: u64 = 1 << 1;
    /// User-accessible.
    pub const USER: u64 = 1 << 2;
    /// Accessed.
    pub const ACCESSED: u64 = 1 << 5;
    /// Dirty.
    pub const DIRTY: u64 = 1 << 6;
    /// No-execute.
    pub const NO_EXECUTE: u64 = 1 << 63;
}

/// Physical-address bits of an entry.
pub const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;

fn table(phys: u64) -> &'static mut [u64; 512] {
    // SAFETY: `phys` is a page-table frame owned by an address space; the direct map covers
    // it and the address space's lock serialises modifications.
    unsafe { &mut *(phys_to_virt(phys) as *mut [u64; 512]) }
}

/// A fresh top-level table sharing the kernel half.
pub fn new_root() -> Option<u64> {
    let root = frames::alloc_zeroed()?;
    let kernel = table(current_kernel_root());
    let new = table(root);
    new[256..].copy_from_slice(&kernel[256..]);
    Some(root)
}

static KERNEL_ROOT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Records the kernel's own root (boot CPU, after `paging::init`).
pub fn set_kernel_root() {
    KERNEL_ROOT.store(current_root(), core::sync::atomic::Ordering::Relaxed);
}

/// The kernel's own root table.
pub fn current_kernel_root() -> u64 {
    KERNEL_ROOT.load(core::sync::atomic::Ordering::Relaxed)
}

fn index(va: u64, level: u32) -> usize {
    ((va >> (12 + 9 * level)) & 511) as usize
}

/// The last-level entry for `va`, creating intermediate tables when `create`.
pub fn entry(root: u64, va: u64, create: bool) -> Option<&'static mut u64> {
    let mut phys = root;
    for level in (1..4).rev() {
        let t = table(phys);
        let e = &mut t[index(va, level)];
        if *e & flags::PRESENT == 0 {
            if !create {
                return None;
            }
            let next = frames::alloc_zeroed()?;
            *e = next | flags::PRESENT | flags::WRITABLE | flags::USER;
        }
        phys = *e & ADDRESS_MASK;
    }
    Some(&mut table(phys)[index(va, 0)])
}

/// Calls `f` for every present user leaf entry in `[start, end)`.
pub fn for_each_present(root: u64, start: u64, end: u64, mut f: impl FnMut(u64, &mut u64)) {
    fn walk(phys: u64, level: u32, base: u64, start: u64, end: u64, f: &mut dyn FnMut(u64, &mut u64)) {
        let span = 1u64 << (12 + 9 * level);
        let t = table(phys);
        let limit = if level == 3 { 256 } else { 512 };
        for (i, e) in t.iter_mut().enumerate().take(limit) {
            let va = base + i as u64 * span;
            if va + span <= start || va >= end || *e & flags::PRESENT == 0 {
                continue;
            }
            if level == 0 {
                f(va, e);
            } else {
                walk(*e & ADDRESS_MASK, level - 1, va, start, end, f);
            }
        }
    }
    walk(root, 3, 0, start, end, &mut f);
}

/// Frees every user page-table page (not the mapped frames) and the root itself.
pub fn free_tables(root: u64) {
    fn free_level(phys: u64, level: u32) {
        let t = table(phys);
        let limit = if level == 3 { 256 } else { 512 };
        for e in t.iter_mut().take(limit) {
            if *e & flags::PRESENT != 0 && level > 1 {
                free_level(*e & ADDRESS_MASK, level - 1);
            } else if *e & flags::PRESENT != 0 && level == 1 {
                frames::free(*e & ADDRESS_MASK);
            }
            if level != 3 || *e & flags::PRESENT != 0 {
                *e = 0;
            }
        }
        if level < 3 {
            frames::free(phys);
        }
    }
    free_level(root, 3);
    frames::free(root);
}
