//! The PVH entry: QEMU's `-kernel` loader finds the PVH ELF note, starts the boot CPU in
//! 32-bit protected mode with paging off, and passes the `hvm_start_info` address in EBX.
//! This code builds boot page tables, enters long mode and jumps to the higher half.
//!
//! The boot page tables map the first 4 GiB three times with 2 MiB pages: identity (for the
//! jump into long mode and for the AP trampoline), at the direct-map base, and the first
//! 2 GiB at the kernel base (-2 GiB). `paging::init` replaces them with the final tables.

use core::arch::global_asm;

/// Size of the boot CPU's stack.
pub const BOOT_STACK_BYTES: usize = 64 * 1024;

global_asm!(
    r#"
    .set KERNEL_VMA, 0xffffffff80000000
    .set PTE_PRESENT_WRITABLE, 0x3
    .set PTE_HUGE_PRESENT_WRITABLE, 0x83

    /* The PVH note: XEN_ELFNOTE_PHYS32_ENTRY (18), owner "Xen", the 32-bit physical entry. */
    .section .note.pvh, "a", @note
    .balign 4
    .long 4
    .long 4
    .long 18
    .asciz "Xen"
    .balign 4
    .long pvh_start32 - KERNEL_VMA

    .section .data.boot_page_tables, "aw"
    .balign 4096
    .global BOOT_PML4
BOOT_PML4:
    .quad boot_pdpt_low - KERNEL_VMA + PTE_PRESENT_WRITABLE
    .fill 255, 8, 0
    .quad boot_pdpt_low - KERNEL_VMA + PTE_PRESENT_WRITABLE
    .fill 254, 8, 0
    .quad boot_pdpt_kernel - KERNEL_VMA + PTE_PRESENT_WRITABLE
boot_pdpt_low:
    .quad boot_pd - KERNEL_VMA + PTE_PRESENT_WRITABLE
    .quad boot_pd - KERNEL_VMA + 0x1000 + PTE_PRESENT_WRITABLE
    .quad boot_pd - KERNEL_VMA + 0x2000 + PTE_PRESENT_WRITABLE
    .quad boot_pd - KERNEL_VMA + 0x3000 + PTE_PRESENT_WRITABLE
    .fill 508, 8, 0
    .global boot_pdpt_kernel
boot_pdpt_kernel:
    .fill 510, 8, 0
    .quad boot_pd - KERNEL_VMA + PTE_PRESENT_WRITABLE
    .quad boot_pd - KERNEL_VMA + 0x1000 + PTE_PRESENT_WRITABLE
boot_pd:
    .set boot_pd_addr, 0
    .rept 2048
    .quad boot_pd_addr + PTE_HUGE_PRESENT_WRITABLE
    .set boot_pd_addr, boot_pd_addr + 0x200000
    .endr

    /* A 64-bit GDT for the jump into long mode; `gdt::init` installs the real one. */
    .section .rodata.boot, "a"
    .balign 16
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff  /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff  /* 0x10: data */
boot_gdt_end:
boot_gdt_ptr32:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt - KERNEL_VMA

    .section .text.boot, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    movl %ebx, %edi                       /* hvm_start_info, first argument of kernel_entry */
    movl $(BOOT_PML4 - KERNEL_VMA), %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl $(1 << 5), %eax                   /* PAE */
    movl %eax, %cr4
    movl $0xC0000080, %ecx                /* EFER */
    rdmsr
    orl $((1 << 8) | (1 << 11)), %eax     /* LME | NXE */
    wrmsr
    movl %cr0, %eax
    orl $((1 << 31) | (1 << 16) | 1), %eax /* PG | WP | PE */
    movl %eax, %cr0
    lgdt (boot_gdt_ptr32 - KERNEL_VMA)
    ljmp $0x08, $(pvh_start64_low - KERNEL_VMA)

    .code64
pvh_start64_low:
    movabsq $pvh_start64_high, %rax
    jmp *%rax
pvh_start64_high:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorl %eax, %eax
    movw %ax, %fs
    movw %ax, %gs
    leaq BOOT_STACK_TOP(%rip), %rsp
    xorl %ebp, %ebp
    call kernel_entry
1:  hlt
    jmp 1b
    "#,
    options(att_syntax)
);

/// The boot CPU's stack: the top is `BOOT_STACK_TOP`.
#[repr(C, align(4096))]
struct BootStack([u8; BOOT_STACK_BYTES]);

#[used]
#[unsafe(no_mangle)]
static mut BOOT_STACK: BootStack = BootStack([0; BOOT_STACK_BYTES]);

global_asm!(
    r#"
    .set BOOT_STACK_TOP, BOOT_STACK + {size}
    .global BOOT_STACK_TOP
    "#,
    size = const BOOT_STACK_BYTES,
    options(att_syntax)
);

unsafe extern "C" {
    static __kernel_start: u8;
    static __kernel_end: u8;
    fn syscall_entry();
}

/// A few kernel symbols for `/proc/kallsyms`: address, kind, Linux's name.
pub fn kernel_symbols() -> [(u64, char, &'static str); 3] {
    [
        (&raw const __kernel_start as u64, 'T', "_text"),
        (syscall_entry as *const () as u64, 'T', "entry_SYSCALL_64"),
        (&raw const __kernel_end as u64, 'B', "_end"),
    ]
}
