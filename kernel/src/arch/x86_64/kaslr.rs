//! KASLR for the kernel image. Before anything stores a pointer at run time, the boot CPU
//! picks a random 2 MiB-aligned delta, maps the image a second time at `link address +
//! delta` in the boot page tables, adds the delta to every absolute self-reference listed
//! in `.kaslr_relocs` (written after linking by `tools/kaslr-relocs.py`), and continues at
//! the new address on the relocated boot stack. Without a table (the post-link step did not
//! run) or without RDRAND the image stays where it was linked.

use core::sync::atomic::{AtomicU64, Ordering};

/// Virtual base the kernel image is linked at (physical 0 maps here); the move adds the
/// delta to it.
pub const KERNEL_VMA: u64 = 0xffff_ffff_8000_0000;

/// Capacity of the relocation table in 32-bit words.
const TABLE_WORDS: usize = 48 * 1024;
/// Table magic written by the post-link tool ("KASL").
const MAGIC: u32 = 0x4b41_534c;
/// The delta is a multiple of this (one boot page-directory entry).
const ALIGN: u64 = 2 << 20;
/// Smallest delta: the old and new images must not share a 2 MiB boot mapping.
const MIN_DELTA: u64 = 64 << 20;
/// Largest delta: the new image stays in the first GiB above -2 GiB (one boot PD).
const MAX_DELTA: u64 = (1 << 30) - (16 << 20);

/// The relocation table, filled in by the post-link tool.
#[unsafe(link_section = ".kaslr_relocs")]
#[used]
static TABLE: [u32; TABLE_WORDS] = [0; TABLE_WORDS];

/// How far the image was moved from its link address.
static DELTA: AtomicU64 = AtomicU64::new(0);

/// The image's displacement from its link address (0 without KASLR).
pub fn delta() -> u64 {
    DELTA.load(Ordering::Relaxed)
}

unsafe extern "C" {
    static __kernel_start: u8;
    static boot_pdpt_kernel: u8;
    static BOOT_STACK_TOP: u8;
}

/// A page directory for the -2 GiB..-1 GiB slot during the move: the old image stays
/// mapped where it runs, the new one appears `delta` higher.
#[repr(C, align(4096))]
struct PageDirectory([u64; 512]);
static mut MOVE_PD: PageDirectory = PageDirectory([0; 512]);

fn rdrand() -> Option<u64> {
    if core::arch::x86_64::__cpuid(1).ecx & (1 << 30) == 0 {
        return None;
    }
    for _ in 0..16 {
        let (value, ok): (u64, u8);
        // SAFETY: RDRAND exists (checked above) and only writes the named registers.
        unsafe {
            core::arch::asm!("rdrand {}", "setc {}", out(reg) value, out(reg_byte) ok, options(nomem, nostack))
        };
        if ok == 1 {
            return Some(value);
        }
    }
    None
}

/// Moves the image and calls `continue_at(arg)` at its new address on the moved boot
/// stack; returns only if the image stays where it is (then the caller continues itself).
///
/// # Safety
/// Must be the first thing the boot CPU does in Rust: nothing may have stored a pointer
/// into the image (or taken one on the stack that is used later) before.
pub unsafe fn relocate(continue_at: extern "C" fn(u64) -> !, arg: u64) {
    // SAFETY: reading the table through a volatile load: its contents are written into the
    // file after compilation, so the compiler must not assume the zero initialiser.
    let header = |i: usize| unsafe { core::ptr::read_volatile(&TABLE[i]) };
    if header(0) != MAGIC || command_line_disables(arg) {
        return;
    }
    let Some(random) = rdrand() else { return };
    let (n64, n32) = (header(1) as usize, header(2) as usize);
    if 3 + n64 + n32 > TABLE_WORDS {
        return;
    }
    let slots = (MAX_DELTA - MIN_DELTA) / ALIGN;
    let delta = MIN_DELTA + (random % slots) * ALIGN;
    // Every image address used after the patch loop is taken now and laundered through an
    // empty asm: the compiler could otherwise rematerialise it afterwards from an immediate
    // the loop has already moved, mixing old and new addresses.
    let launder = |mut v: u64| {
        // SAFETY: an empty asm that only makes `v` opaque to the optimiser.
        unsafe {
            core::arch::asm!("/* {0} */", inout(reg) v, options(nomem, nostack, preserves_flags))
        };
        v
    };
    let start = launder(&raw const __kernel_start as u64);
    let entry = launder(continue_at as *const () as u64);
    let stack = launder(&raw const BOOT_STACK_TOP as u64);

    // Map `KERNEL_VMA + delta + p` -> `p` for the image, keeping the old mapping.
    // SAFETY: MOVE_PD is only used here, on the boot CPU, before other CPUs run; the boot
    // page tables are ours to change; the new entry maps the image's own physical memory.
    unsafe {
        let pd = &raw mut MOVE_PD;
        for (j, entry) in (*pd).0.iter_mut().enumerate() {
            let va_offset = j as u64 * ALIGN;
            let phys = if va_offset >= delta {
                va_offset - delta
            } else {
                va_offset
            };
            *entry = phys | 0x83; // present, writable, 2 MiB
        }
        let pd_phys = (&raw const MOVE_PD) as u64 - KERNEL_VMA;
        let pdpt = (&raw const boot_pdpt_kernel) as *mut u64;
        pdpt.add(510).write_volatile(pd_phys | 0x3);
        x86_64::instructions::tlb::flush_all();
    }

    // Patch every absolute self-reference (through the old mapping, which is writable).
    for i in 0..n64 {
        let at = (start + u64::from(header(3 + i))) as *mut u64;
        // SAFETY: the tool listed this 8-byte slot inside the image; it holds an image address.
        unsafe { at.write_unaligned(at.read_unaligned().wrapping_add(delta)) };
    }
    for i in 0..n32 {
        let at = (start + u64::from(header(3 + n64 + i))) as *mut u32;
        // SAFETY: as above, for a sign-extended 32-bit slot; the new address still fits
        // because the image stays in the top 2 GiB.
        unsafe { at.write_unaligned(at.read_unaligned().wrapping_add(delta as u32)) };
    }
    DELTA.store(delta, Ordering::SeqCst);
    let (entry, stack) = (entry + delta, stack + delta);
    // SAFETY: the new mapping holds the relocated image; the continuation never returns and
    // starts on the relocated boot stack, so no old-address state survives.
    unsafe {
        core::arch::asm!(
            "mov rsp, {stack}",
            "xor ebp, ebp",
            "call {entry}",
            "ud2",
            stack = in(reg) stack,
            entry = in(reg) entry,
            in("rdi") arg,
            options(noreturn)
        )
    }
}

/// `nokaslr` on the command line keeps the image in place (for debuggers). Read straight
/// from the PVH start info through the boot identity map, before anything is set up.
fn command_line_disables(start_info: u64) -> bool {
    // SAFETY: `start_info` is the PVH start info (below 4 GiB, identity-mapped by the boot
    // tables); its command-line field is a physical address of a NUL-terminated string.
    unsafe {
        let cmdline = ((start_info + 24) as *const u64).read_unaligned();
        if cmdline == 0 || cmdline >= 1 << 32 {
            return false;
        }
        let text = core::ffi::CStr::from_ptr(cmdline as *const core::ffi::c_char).to_bytes();
        text.split(|b| b.is_ascii_whitespace())
            .any(|word| word == b"nokaslr")
    }
}
