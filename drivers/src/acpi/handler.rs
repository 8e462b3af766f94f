//! An `acpi::Handler` that reaches physical memory through the kernel's direct map.

use acpi::{Handler, PciAddress, RawPhysicalMapping};
use core::ptr::NonNull;
use x86_64::instructions::port::Port;

/// Maps ACPI tables by adding the direct-map offset; nothing is ever unmapped.
#[derive(Clone, Copy, Debug)]
pub struct DirectMapHandler {
    /// Virtual address at which physical address 0 is mapped.
    pub phys_offset: u64,
    /// Nanoseconds since boot, for AML timing requests.
    pub clock_ns: fn() -> u64,
}

impl DirectMapHandler {
    fn ptr<T>(&self, address: usize) -> *mut T {
        (self.phys_offset + address as u64) as *mut T
    }

    fn pci_port_address(address: PciAddress, offset: u16) -> u32 {
        0x8000_0000
            | (u32::from(address.bus()) << 16)
            | (u32::from(address.device()) << 11)
            | (u32::from(address.function()) << 8)
            | u32::from(offset & 0xfc)
    }

    fn pci_read(address: PciAddress, offset: u16) -> u32 {
        // SAFETY: 0xcf8/0xcfc are the PCI configuration mechanism #1 ports; a read only
        // selects and reads a configuration dword.
        unsafe {
            Port::<u32>::new(0xcf8).write(Self::pci_port_address(address, offset));
            Port::<u32>::new(0xcfc).read()
        }
    }

    fn pci_write(address: PciAddress, offset: u16, value: u32) {
        // SAFETY: as in `pci_read`; ACPI asked for this configuration write.
        unsafe {
            Port::<u32>::new(0xcf8).write(Self::pci_port_address(address, offset));
            Port::<u32>::new(0xcfc).write(value);
        }
    }
}

macro_rules! mmio_access {
    ($read:ident, $write:ident, $ty:ty) => {
        fn $read(&self, address: usize) -> $ty {
            // SAFETY: the direct map covers all physical memory and MMIO below 4 GiB; ACPI
            // asks only for addresses its tables name.
            unsafe { self.ptr::<$ty>(address).read_volatile() }
        }
        fn $write(&self, address: usize, value: $ty) {
            // SAFETY: as for the read.
            unsafe { self.ptr::<$ty>(address).write_volatile(value) }
        }
    };
}

macro_rules! io_access {
    ($read:ident, $write:ident, $ty:ty) => {
        fn $read(&self, port: u16) -> $ty {
            // SAFETY: ACPI asks only for ports its tables name.
            unsafe { Port::<$ty>::new(port).read() }
        }
        fn $write(&self, port: u16, value: $ty) {
            // SAFETY: as for the read.
            unsafe { Port::<$ty>::new(port).write(value) }
        }
    };
}

impl Handler for DirectMapHandler {
    unsafe fn map_physical_region<T>(
        &self,
        physical_address: usize,
        size: usize,
    ) -> RawPhysicalMapping<T> {
        let virt = NonNull::new(self.ptr::<T>(physical_address)).unwrap_or(NonNull::dangling());
        // SAFETY: the direct map maps the whole region at `phys_offset + physical_address`.
        unsafe { RawPhysicalMapping::new(physical_address, virt, size, size) }
    }

    unsafe fn unmap_physical_region<T>(&self, _region: RawPhysicalMapping<T>) {}

    mmio_access!(read_u8, write_u8, u8);
    mmio_access!(read_u16, write_u16, u16);
    mmio_access!(read_u32, write_u32, u32);
    mmio_access!(read_u64, write_u64, u64);
    io_access!(read_io_u8, write_io_u8, u8);
    io_access!(read_io_u16, write_io_u16, u16);
    io_access!(read_io_u32, write_io_u32, u32);

    fn read_pci_u8(&self, address: PciAddress, offset: u16) -> u8 {
        (Self::pci_read(address, offset) >> ((offset & 3) * 8)) as u8
    }
    fn read_pci_u16(&self, address: PciAddress, offset: u16) -> u16 {
        (Self::pci_read(address, offset) >> ((offset & 2) * 8)) as u16
    }
    fn read_pci_u32(&self, address: PciAddress, offset: u16) -> u32 {
        Self::pci_read(address, offset)
    }
    fn write_pci_u8(&self, address: PciAddress, offset: u16, value: u8) {
        let shift = (offset & 3) * 8;
        let old = Self::pci_read(address, offset) & !(0xff << shift);
        Self::pci_write(address, offset, old | (u32::from(value) << shift));
    }
    fn write_pci_u16(&self, address: PciAddress, offset: u16, value: u16) {
        let shift = (offset & 2) * 8;
        let old = Self::pci_read(address, offset) & !(0xffff << shift);
        Self::pci_write(address, offset, old | (u32::from(value) << shift));
    }
    fn write_pci_u32(&self, address: PciAddress, offset: u16, value: u32) {
        Self::pci_write(address, offset, value);
    }

    fn nanos_since_boot(&self) -> u64 {
        (self.clock_ns)()
    }

    fn stall(&self, microseconds: u64) {
        let end = (self.clock_ns)() + microseconds * 1000;
        while (self.clock_ns)() < end {
            core::hint::spin_loop();
        }
    }

    fn sleep(&self, milliseconds: u64) {
        self.stall(milliseconds * 1000);
    }
}
