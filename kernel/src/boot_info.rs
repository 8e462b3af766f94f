//! The PVH `hvm_start_info` handed over by QEMU: memory map, ACPI RSDP, command line and
//! modules (the initramfs), copied into kernel memory before low memory is reused.

use crate::arch::paging::phys_to_virt;
use core::{mem::size_of, ptr};

/// `hvm_start_info.magic`.
const PVH_MAGIC: u32 = 0x336e_c578;
/// E820 type of usable RAM.
pub const E820_RAM: u32 = 1;
/// Most memory-map entries kept.
pub const MAX_MEMMAP: usize = 64;

#[repr(C)]
struct StartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

#[repr(C)]
struct ModlistEntry {
    paddr: u64,
    size: u64,
    cmdline_paddr: u64,
    reserved: u64,
}

/// One memory-map entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct MemoryRegion {
    /// Physical start.
    pub base: u64,
    /// Length in bytes.
    pub size: u64,
    /// E820 type (1 = RAM).
    pub kind: u32,
    reserved: u32,
}

impl MemoryRegion {
    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.base + self.size
    }
}

/// The longest kernel command line kept, terminator included (Linux x86's size).
pub const COMMAND_LINE_SIZE: usize = 2048;

/// What the kernel keeps of the start info.
pub struct BootInfo {
    /// The memory map.
    pub memory: [MemoryRegion; MAX_MEMMAP],
    /// Entries used in `memory`.
    pub memory_len: usize,
    /// Physical address of the ACPI RSDP.
    pub rsdp: u64,
    /// Kernel command line (copied; Linux's x86 `COMMAND_LINE_SIZE`).
    pub cmdline: [u8; COMMAND_LINE_SIZE],
    /// Bytes used in `cmdline`.
    pub cmdline_len: usize,
    /// The command line was longer than `cmdline` and was cut (the kernel says so).
    pub cmdline_truncated: bool,
    /// The initramfs `(physical start, size)`, if QEMU was given `-initrd`.
    pub initrd: Option<(u64, u64)>,
}

impl BootInfo {
    /// The memory map entries.
    pub fn memory_map(&self) -> &[MemoryRegion] {
        &self.memory[..self.memory_len]
    }

    /// The command line as text (lossy on invalid UTF-8).
    pub fn cmdline(&self) -> &str {
        core::str::from_utf8(&self.cmdline[..self.cmdline_len]).unwrap_or("")
    }
}

/// Why the start info is unusable.
#[derive(Debug)]
#[allow(dead_code)] // fields are shown by the panic message through Debug
pub enum BootInfoError {
    /// Wrong magic: not started through PVH.
    BadMagic(u32),
    /// Version 0 has no memory map.
    NoMemoryMap,
}

/// Reads the start info at physical `addr` (still identity/direct mapped by the boot tables).
///
/// # Safety
/// `addr` must be the address QEMU passed in EBX at the PVH entry.
pub unsafe fn parse(addr: u64) -> Result<BootInfo, BootInfoError> {
    // SAFETY: the caller guarantees `addr` points at the start info; the boot tables map
    // the first 4 GiB at the direct-map offset.
    let info = unsafe { ptr::read_unaligned(phys_to_virt(addr) as *const StartInfo) };
    if info.magic != PVH_MAGIC {
        return Err(BootInfoError::BadMagic(info.magic));
    }
    if info.version < 1 || info.memmap_paddr == 0 {
        return Err(BootInfoError::NoMemoryMap);
    }
    let mut boot = BootInfo {
        memory: [MemoryRegion::default(); MAX_MEMMAP],
        memory_len: 0,
        rsdp: info.rsdp_paddr,
        cmdline: [0; COMMAND_LINE_SIZE],
        cmdline_len: 0,
        cmdline_truncated: false,
        initrd: None,
    };
    let entries = (info.memmap_entries as usize).min(MAX_MEMMAP);
    for i in 0..entries {
        let at = info.memmap_paddr + (i * size_of::<MemoryRegion>()) as u64;
        // SAFETY: within the memory map QEMU described.
        boot.memory[i] = unsafe { ptr::read_unaligned(phys_to_virt(at) as *const MemoryRegion) };
    }
    boot.memory_len = entries;
    boot.memory[..entries].sort_unstable_by_key(|r| r.base);

    if info.cmdline_paddr != 0 {
        let src = phys_to_virt(info.cmdline_paddr);
        while boot.cmdline_len < boot.cmdline.len() - 1 {
            // SAFETY: a NUL-terminated string QEMU placed in low memory.
            let byte = unsafe { src.add(boot.cmdline_len).read() };
            if byte == 0 {
                break;
            }
            boot.cmdline[boot.cmdline_len] = byte;
            boot.cmdline_len += 1;
        }
        // SAFETY: as above; the byte after the last one kept.
        boot.cmdline_truncated = unsafe { src.add(boot.cmdline_len).read() } != 0;
    }
    if info.nr_modules > 0 && info.modlist_paddr != 0 {
        // SAFETY: the first module-list entry QEMU described.
        let module =
            unsafe { ptr::read_unaligned(phys_to_virt(info.modlist_paddr) as *const ModlistEntry) };
        if module.size > 0 {
            boot.initrd = Some((module.paddr, module.size));
        }
    }
    Ok(boot)
}
