//! The kernel's final page tables: a non-executable direct map of all physical memory at a
//! randomized base (KASLR for the direct map and, through it, the heap), and the kernel
//! image at -2 GiB with per-section permissions (text read+execute, rodata read-only, data
//! and bss read+write, never writable and executable).

use x86_64::{
    registers::control::{Cr3, Cr3Flags},
    structures::paging::{
        FrameAllocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags as Flags,
        PhysFrame, Size1GiB, Size2MiB, Size4KiB,
    },
    PhysAddr, VirtAddr,
};

/// Where the boot page tables put the direct map (used until the final tables load).
pub const BOOT_PHYS_OFFSET: u64 = 0xffff_8000_0000_0000;
/// The lowest randomized direct-map base; bases are 1 GiB aligned in a 32 TiB window.
const DIRECT_MAP_WINDOW_START: u64 = 0xffff_8800_0000_0000;
/// Number of 1 GiB slots the direct-map base is chosen from (32 TiB / 1 GiB).
const DIRECT_MAP_SLOTS: u64 = 32 * 1024;

/// Virtual address of physical address 0 in the direct map (randomized at boot).
static PHYS_OFFSET: core::sync::atomic::AtomicU64 =
    core::sync::atomic::AtomicU64::new(BOOT_PHYS_OFFSET);

/// The direct map's base.
#[inline]
pub fn phys_offset() -> u64 {
    PHYS_OFFSET.load(core::sync::atomic::Ordering::Relaxed)
}
/// Virtual base the kernel image is linked at (physical 0 maps here); KASLR moves the
/// image up from it.
pub use super::kaslr::KERNEL_VMA;

/// The direct-map address of a physical address.
pub fn phys_to_virt(phys: u64) -> *mut u8 {
    (phys_offset() + phys) as *mut u8
}

/// The physical address of a kernel-image address (after any KASLR move).
pub fn image_virt_to_phys(virt: u64) -> u64 {
    virt - KERNEL_VMA - super::kaslr::delta()
}

unsafe extern "C" {
    static __kernel_start: u8;
    static __rodata_start: u8;
    static __data_start: u8;
    static __kernel_end: u8;
}

fn symbol_addr(symbol: &u8) -> u64 {
    symbol as *const u8 as u64
}

/// The kernel image's physical extent `[start, end)`.
pub fn kernel_image_phys() -> (u64, u64) {
    // SAFETY: linker-defined symbols; only their addresses are taken.
    let (start, end) = unsafe { (symbol_addr(&__kernel_start), symbol_addr(&__kernel_end)) };
    (image_virt_to_phys(start), image_virt_to_phys(end))
}

/// Builds the final tables with frames from `frames` and switches CR3 to them.
/// `max_phys` is the end of the highest physical range to direct-map (at least 4 GiB so
/// MMIO below 4 GiB is covered); `random` picks the direct map's base. Returns the new
/// top-level table's physical address. Pointers into the boot direct map are invalid after.
pub fn init(
    frames: &mut impl FrameAllocator<Size4KiB>,
    max_phys: u64,
    huge_1g: bool,
    random: u64,
) -> PhysAddr {
    let base = DIRECT_MAP_WINDOW_START + (random % DIRECT_MAP_SLOTS) * (1 << 30);
    let pml4_frame = frames
        .allocate_frame()
        .expect("no memory for the kernel page tables");
    let pml4_ptr = phys_to_virt(pml4_frame.start_address().as_u64()) as *mut PageTable;
    // SAFETY: the frame was just allocated for us and the boot tables direct-map it.
    let pml4 = unsafe {
        pml4_ptr.write(PageTable::new());
        &mut *pml4_ptr
    };
    // SAFETY: every physical frame used while building is reachable through the boot direct
    // map (bootstrap frames come from below 4 GiB).
    let mut mapper = unsafe { OffsetPageTable::new(pml4, VirtAddr::new(BOOT_PHYS_OFFSET)) };

    let data = Flags::PRESENT | Flags::WRITABLE | Flags::NO_EXECUTE | Flags::GLOBAL;
    let mut phys = 0u64;
    while phys < max_phys {
        let virt = VirtAddr::new(base + phys);
        // SAFETY: the direct map aliases physical memory only at `base`, which nothing
        // else uses; the tables are not live yet, so no flush is needed.
        unsafe {
            if huge_1g && phys.is_multiple_of(1 << 30) && max_phys - phys >= 1 << 30 {
                let page = Page::<Size1GiB>::containing_address(virt);
                let frame = PhysFrame::<Size1GiB>::containing_address(PhysAddr::new(phys));
                mapper
                    .map_to(page, frame, data | Flags::HUGE_PAGE, frames)
                    .expect("direct map")
                    .ignore();
                phys += 1 << 30;
            } else {
                let page = Page::<Size2MiB>::containing_address(virt);
                let frame = PhysFrame::<Size2MiB>::containing_address(PhysAddr::new(phys));
                mapper
                    .map_to(page, frame, data | Flags::HUGE_PAGE, frames)
                    .expect("direct map")
                    .ignore();
                phys += 2 << 20;
            }
        }
    }

    // SAFETY: linker-defined section boundaries, page aligned by linker.ld.
    let (start, rodata, data_start, end) = unsafe {
        (
            symbol_addr(&__kernel_start),
            symbol_addr(&__rodata_start),
            symbol_addr(&__data_start),
            symbol_addr(&__kernel_end),
        )
    };
    let mut virt = start & !0xfff;
    while virt < end {
        let flags = if virt < rodata {
            Flags::PRESENT | Flags::GLOBAL
        } else if virt < data_start {
            Flags::PRESENT | Flags::GLOBAL | Flags::NO_EXECUTE
        } else {
            Flags::PRESENT | Flags::GLOBAL | Flags::NO_EXECUTE | Flags::WRITABLE
        };
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(virt));
        let frame =
            PhysFrame::<Size4KiB>::containing_address(PhysAddr::new(image_virt_to_phys(virt)));
        // SAFETY: maps the image onto its own physical pages at its link address.
        unsafe {
            mapper
                .map_to(page, frame, flags, frames)
                .expect("kernel image map")
                .ignore()
        };
        virt += 4096;
    }

    // SAFETY: the new tables map the running code, its stack (in .bss) and the direct map
    // exactly as the boot tables did for everything the kernel touches from now on.
    unsafe { Cr3::write(pml4_frame, Cr3Flags::empty()) };
    PHYS_OFFSET.store(base, core::sync::atomic::Ordering::Relaxed);
    pml4_frame.start_address()
}

/// Physical address of the current top-level page table.
pub fn current_root() -> u64 {
    Cr3::read().0.start_address().as_u64()
}

/// The kernel's own root table (CR3 of the kernel half; 0 before it is recorded).
static KERNEL_ROOT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Records the kernel's own root table (boot CPU, once its tables are final).
pub fn set_kernel_root(root: u64) {
    KERNEL_ROOT.store(root, core::sync::atomic::Ordering::Relaxed);
}

/// The kernel's own root table.
pub fn kernel_root() -> u64 {
    KERNEL_ROOT.load(core::sync::atomic::Ordering::Relaxed)
}
