//! Application-processor start-up code. The STARTUP IPI starts an AP in real mode at
//! `TRAMPOLINE_PHYS`; this code goes straight to long mode on the boot page tables (which
//! identity-map low memory), then jumps to the AP's Rust entry on its own stack.

use super::paging::{image_virt_to_phys, phys_to_virt};
use core::{arch::global_asm, ptr};

/// Physical address the trampoline is copied to (page 8, SIPI vector 0x08).
pub const TRAMPOLINE_PHYS: u64 = 0x8000;

global_asm!(
    r#"
    .set TRAMPOLINE_PHYS, 0x8000
    .section .text.trampoline, "ax"
    .code16
    .global ap_trampoline_start
ap_trampoline_start:
    cli
    cld
    movw %cs, %ax
    movw %ax, %ds
    movl $((1 << 5) | (1 << 7)), %eax             /* PAE | PGE */
    movl %eax, %cr4
    movl (tramp_cr3 - ap_trampoline_start), %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx
    rdmsr
    orl $((1 << 8) | (1 << 11)), %eax             /* LME | NXE */
    wrmsr
    movl %cr0, %eax
    orl $((1 << 31) | (1 << 16) | 1), %eax        /* PG | WP | PE */
    movl %eax, %cr0
    lgdtl (tramp_gdtr - ap_trampoline_start)
    ljmpl $0x08, $(TRAMPOLINE_PHYS + tramp64 - ap_trampoline_start)

    .code64
tramp64:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movq (TRAMPOLINE_PHYS + tramp_stack - ap_trampoline_start), %rdx
    movq (TRAMPOLINE_PHYS + tramp_arg - ap_trampoline_start), %rdi
    movq (TRAMPOLINE_PHYS + tramp_final_cr3 - ap_trampoline_start), %rsi
    movq (TRAMPOLINE_PHYS + tramp_entry - ap_trampoline_start), %rcx
    xorl %ebp, %ebp
    movabsq $ap_long_entry, %rax
    jmp *%rax

    .balign 16
tramp_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
tramp_gdtr:
    .word 23
    .long TRAMPOLINE_PHYS + tramp_gdt - ap_trampoline_start
    .balign 8
    /* TrampolineData */
tramp_cr3:   .quad 0
tramp_stack: .quad 0
tramp_entry: .quad 0
tramp_arg:   .quad 0
tramp_final_cr3: .quad 0
    .global ap_trampoline_end
ap_trampoline_end:
    .code64

    /* In the kernel image (mapped by both the boot and the final tables): switch to the
       final tables, then to the AP's stack (which only the final tables map: the direct
       map is randomized), then enter Rust. rdi = arg, rsi = CR3, rdx = stack, rcx = entry. */
    .section .text.ap_long_entry, "ax"
ap_long_entry:
    movq %rsi, %cr3
    movq %rdx, %rsp
    jmp *%rcx
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    static ap_trampoline_start: u8;
    static ap_trampoline_end: u8;
    /// The boot page tables (boot.rs), which identity-map the first 4 GiB.
    static BOOT_PML4: u8;
}

/// The parameters at the end of the trampoline, filled in per AP.
#[repr(C)]
struct TrampolineData {
    cr3: u64,
    stack_top: u64,
    entry: u64,
    arg: u64,
    final_cr3: u64,
}

/// Copies the trampoline to low memory and fills in the parameters for one AP: it will
/// load `final_cr3` and run `entry(arg)` on the stack ending at `stack_top`.
pub fn prepare(stack_top: u64, entry: extern "C" fn(u64) -> !, arg: u64, final_cr3: u64) {
    // Linker symbols: only their addresses are used.
    let (start, end, boot_pml4) = (
        &raw const ap_trampoline_start as u64,
        &raw const ap_trampoline_end as u64,
        &raw const BOOT_PML4 as u64,
    );
    let len = (end - start) as usize;
    let dest = phys_to_virt(TRAMPOLINE_PHYS);
    let data = TrampolineData {
        cr3: image_virt_to_phys(boot_pml4),
        stack_top,
        entry: entry as usize as u64,
        arg,
        final_cr3,
    };
    // SAFETY: the page at TRAMPOLINE_PHYS is below 1 MiB, reserved for this use (the frame
    // allocators never hand out memory below 1 MiB), and only one AP starts at a time.
    unsafe {
        ptr::copy_nonoverlapping(start as *const u8, dest, len);
        let data_ptr =
            dest.add(len - core::mem::size_of::<TrampolineData>()) as *mut TrampolineData;
        data_ptr.write_volatile(data);
    }
}

/// The trampoline's page number for the STARTUP IPI.
pub const fn sipi_page() -> u8 {
    (TRAMPOLINE_PHYS >> 12) as u8
}
