//! The per-CPU GDT and TSS. The selector layout is fixed by `syscall`/`sysret`:
//! kernel code 0x08, kernel data 0x10, user data 0x1b, user code 0x23, TSS 0x28.

use super::entry_area;
use x86_64::{
    instructions::{
        segmentation::{Segment, CS, DS, ES, SS},
        tables::load_tss,
    },
    structures::{
        gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector},
        tss::TaskStateSegment,
    },
    VirtAddr,
};

/// IST slot for double faults.
pub const IST_DOUBLE_FAULT: u16 = 0;
/// IST slot for NMIs.
pub const IST_NMI: u16 = 1;
/// IST slot for machine checks.
pub const IST_MACHINE_CHECK: u16 = 2;
/// Size of each IST stack.
const IST_STACK_BYTES: usize = 16 * 1024;

/// Kernel code selector.
pub const KERNEL_CODE: SegmentSelector = SegmentSelector(0x08);
/// Kernel data selector.
pub const KERNEL_DATA: SegmentSelector = SegmentSelector(0x10);
/// User data selector (RPL 3).
pub const USER_DATA: SegmentSelector = SegmentSelector(0x1b);
/// User code selector (RPL 3).
pub const USER_CODE: SegmentSelector = SegmentSelector(0x23);

fn stack_top(cpu: usize) -> VirtAddr {
    let base = entry_area::alloc(Some(cpu), IST_STACK_BYTES / 4096);
    VirtAddr::from_ptr(base.wrapping_add(IST_STACK_BYTES))
}

/// Builds and loads a GDT and TSS for the calling CPU, with IST stacks for the
/// exceptions that must not run on a possibly broken stack. All of it lives in the CPU's
/// entry area, mapped even in user page tables under KPTI.
pub fn init_cpu() {
    let cpu = super::percpu::current_cpu().index();
    let page = entry_area::alloc(Some(cpu), 1);
    let tss_ptr = page as *mut TaskStateSegment;
    let gdt_ptr = page.wrapping_add(512) as *mut GlobalDescriptorTable;
    // SAFETY: a fresh entry-area page owned by this CPU; both objects fit in it, aligned.
    let (tss, gdt): (
        &'static mut TaskStateSegment,
        &'static mut GlobalDescriptorTable,
    ) = unsafe {
        tss_ptr.write(TaskStateSegment::new());
        gdt_ptr.write(GlobalDescriptorTable::new());
        (&mut *tss_ptr, &mut *gdt_ptr)
    };
    tss.interrupt_stack_table[usize::from(IST_DOUBLE_FAULT)] = stack_top(cpu);
    tss.interrupt_stack_table[usize::from(IST_NMI)] = stack_top(cpu);
    tss.interrupt_stack_table[usize::from(IST_MACHINE_CHECK)] = stack_top(cpu);
    tss.privilege_stack_table[0] = stack_top(cpu);
    // The return path to user mode builds its iret frame on this stack (mapped under KPTI).
    super::percpu::current().kernel_stack_top.store(
        tss.privilege_stack_table[0].as_u64(),
        core::sync::atomic::Ordering::Relaxed,
    );

    let code = gdt.append(Descriptor::kernel_code_segment());
    let data = gdt.append(Descriptor::kernel_data_segment());
    let user_data = gdt.append(Descriptor::user_data_segment());
    let user_code = gdt.append(Descriptor::user_code_segment());
    // The TSS is leaked, so the descriptor stays valid forever.
    let tss_selector = gdt.append(Descriptor::tss_segment(tss));
    debug_assert_eq!(
        (code, data, user_data, user_code),
        (KERNEL_CODE, KERNEL_DATA, USER_DATA, USER_CODE)
    );
    gdt.load();
    // SAFETY: the selectors index the GDT just loaded, with the descriptors they name.
    unsafe {
        CS::set_reg(code);
        SS::set_reg(data);
        DS::set_reg(SegmentSelector(0));
        ES::set_reg(SegmentSelector(0));
        load_tss(tss_selector);
    }
}
