//! PCI configuration space through the legacy I/O ports (`0xCF8`/`0xCFC`), enough to
//! find a device on bus 0 and enable it.

use x86_64::instructions::port::Port;

/// A device function's address on bus 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciAddress {
    /// Device number (0-31).
    pub device: u8,
    /// Function number (0-7).
    pub function: u8,
}

impl PciAddress {
    fn config_address(self, offset: u8) -> u32 {
        0x8000_0000
            | (u32::from(self.device) << 11)
            | (u32::from(self.function) << 8)
            | u32::from(offset & 0xfc)
    }

    /// Reads the 32-bit configuration register at `offset`.
    pub fn read32(self, offset: u8) -> u32 {
        let mut address = Port::<u32>::new(0xcf8);
        let mut data = Port::<u32>::new(0xcfc);
        // SAFETY: the configuration mechanism #1 ports only select and read a register.
        unsafe {
            address.write(self.config_address(offset));
            data.read()
        }
    }

    /// Writes the 32-bit configuration register at `offset`.
    ///
    /// # Safety
    /// The write must suit the register (it changes how the device decodes and behaves).
    pub unsafe fn write32(self, offset: u8, value: u32) {
        let mut address = Port::<u32>::new(0xcf8);
        let mut data = Port::<u32>::new(0xcfc);
        // SAFETY: the caller vouches for the register and the value.
        unsafe {
            address.write(self.config_address(offset));
            data.write(value);
        }
    }

    /// `(vendor, device)` ids.
    pub fn ids(self) -> (u16, u16) {
        let v = self.read32(0);
        (v as u16, (v >> 16) as u16)
    }

    /// The I/O port base of BAR `n`, if it is an I/O BAR.
    pub fn io_bar(self, n: u8) -> Option<u16> {
        let bar = self.read32(0x10 + 4 * n);
        (bar & 1 == 1).then_some((bar & !3) as u16)
    }

    /// The legacy interrupt line firmware assigned (`0xff`: none).
    pub fn interrupt_line(self) -> u8 {
        self.read32(0x3c) as u8
    }

    /// Enables I/O decoding and bus mastering (the device may then DMA).
    ///
    /// # Safety
    /// The device must be driven by the caller, who owns the memory it will access.
    pub unsafe fn enable_io_and_bus_master(self) {
        let command = self.read32(0x04);
        // SAFETY: sets the I/O space and bus master bits of the command register.
        unsafe { self.write32(0x04, command | 0b101) };
    }
}

/// Every function on bus 0 with these ids, in slot order (QEMU's order of `-drive`s).
pub fn find_all(vendor: u16, device: u16) -> impl Iterator<Item = PciAddress> {
    (0..32u8)
        .flat_map(|d| {
            (0..8u8).map(move |f| PciAddress {
                device: d,
                function: f,
            })
        })
        .filter(move |a| a.ids() == (vendor, device))
}

/// The first function on bus 0 with these ids.
pub fn find(vendor: u16, device: u16) -> Option<PciAddress> {
    (0..32u8)
        .flat_map(|d| {
            (0..8u8).map(move |f| PciAddress {
                device: d,
                function: f,
            })
        })
        .find(|a| a.ids() == (vendor, device))
}
