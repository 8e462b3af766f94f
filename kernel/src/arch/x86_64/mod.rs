//! Everything that touches the x86_64 CPU: boot entry, descriptor tables, traps, per-CPU
//! data, paging hardware, the local APIC and AP start-up. This is where `unsafe` lives.

pub mod apic;
pub mod boot;
pub mod cpu;
pub mod entry_area;
pub mod gdt;
pub mod idt;
pub mod irq_lock;
pub mod kaslr;
pub mod kpti;
pub mod paging;
pub mod percpu;
pub mod tlb;
pub mod trampoline;
pub mod trap;
pub mod uaccess;
pub mod usermode;
