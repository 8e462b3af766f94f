//! A virtio block device over the legacy (virtio 0.9.5) PCI transport: the register
//! layout, the split virtqueue and the request format. The kernel owns the queue memory
//! and the interrupt; this module only encodes.

use core::sync::atomic::{fence, Ordering};
use x86_64::instructions::port::Port;

/// PCI ids of a transitional virtio block device.
pub const PCI_VENDOR: u16 = 0x1af4;
/// See [`PCI_VENDOR`].
pub const PCI_DEVICE: u16 = 0x1001;

const REG_GUEST_FEATURES: u16 = 0x04;
const REG_QUEUE_PFN: u16 = 0x08;
const REG_QUEUE_SIZE: u16 = 0x0c;
const REG_QUEUE_SELECT: u16 = 0x0e;
const REG_QUEUE_NOTIFY: u16 = 0x10;
const REG_STATUS: u16 = 0x12;
const REG_ISR: u16 = 0x13;
const REG_CAPACITY: u16 = 0x14;

const STATUS_ACKNOWLEDGE: u8 = 1;
const STATUS_DRIVER: u8 = 2;
const STATUS_DRIVER_OK: u8 = 4;

/// `VIRTIO_BLK_T_IN` (read).
pub const REQUEST_READ: u32 = 0;
/// `VIRTIO_BLK_T_OUT` (write).
pub const REQUEST_WRITE: u32 = 1;

const DESC_NEXT: u16 = 1;
const DESC_WRITE: u16 = 2;

/// The bytes a queue of `size` entries needs (legacy layout: descriptors, available
/// ring, then the used ring on the next page).
pub const fn queue_bytes(size: u16) -> usize {
    let size = size as usize;
    let used_at = (16 * size + 6 + 2 * size).next_multiple_of(4096);
    used_at + (6 + 8 * size).next_multiple_of(4096)
}

/// The device's I/O registers.
pub struct Registers {
    base: u16,
}

impl Registers {
    /// The registers at I/O port `base` (BAR 0).
    ///
    /// # Safety
    /// `base` must be the I/O BAR of a legacy virtio block device that nothing else
    /// drives.
    pub unsafe fn new(base: u16) -> Registers {
        Registers { base }
    }

    fn write8(&self, reg: u16, v: u8) {
        // SAFETY: a register of our device (contract of `new`).
        unsafe { Port::<u8>::new(self.base + reg).write(v) }
    }

    fn read8(&self, reg: u16) -> u8 {
        // SAFETY: as above.
        unsafe { Port::<u8>::new(self.base + reg).read() }
    }

    fn write16(&self, reg: u16, v: u16) {
        // SAFETY: as above.
        unsafe { Port::<u16>::new(self.base + reg).write(v) }
    }

    fn read16(&self, reg: u16) -> u16 {
        // SAFETY: as above.
        unsafe { Port::<u16>::new(self.base + reg).read() }
    }

    fn write32(&self, reg: u16, v: u32) {
        // SAFETY: as above.
        unsafe { Port::<u32>::new(self.base + reg).write(v) }
    }

    fn read32(&self, reg: u16) -> u32 {
        // SAFETY: as above.
        unsafe { Port::<u32>::new(self.base + reg).read() }
    }

    /// Resets the device, negotiates no optional feature and returns queue 0's size.
    pub fn begin_init(&self) -> u16 {
        self.write8(REG_STATUS, 0);
        self.write8(REG_STATUS, STATUS_ACKNOWLEDGE);
        self.write8(REG_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
        self.write32(REG_GUEST_FEATURES, 0);
        self.write16(REG_QUEUE_SELECT, 0);
        self.read16(REG_QUEUE_SIZE)
    }

    /// Gives queue 0 the page-aligned memory at physical `phys` and starts the device.
    pub fn finish_init(&self, phys: u64) {
        self.write32(REG_QUEUE_PFN, (phys >> 12) as u32);
        self.write8(
            REG_STATUS,
            STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_DRIVER_OK,
        );
    }

    /// Capacity in 512-byte sectors.
    pub fn capacity(&self) -> u64 {
        u64::from(self.read32(REG_CAPACITY)) | (u64::from(self.read32(REG_CAPACITY + 4)) << 32)
    }

    /// Tells the device queue 0 has new requests.
    pub fn notify(&self) {
        self.write16(REG_QUEUE_NOTIFY, 0);
    }

    /// Reads (and so acknowledges) the interrupt status.
    pub fn ack_interrupt(&self) -> u8 {
        self.read8(REG_ISR)
    }
}

/// Queue 0 in memory the kernel allocated (zeroed, page-aligned, [`queue_bytes`]).
pub struct Queue {
    base: *mut u8,
    size: u16,
    next_avail: u16,
    last_used: u16,
}

// SAFETY: the queue memory is owned by this value; callers serialise access.
unsafe impl Send for Queue {}

impl Queue {
    /// The queue of `size` entries at `base`.
    ///
    /// # Safety
    /// `base` must point to [`queue_bytes`]`(size)` zeroed, page-aligned bytes that live
    /// as long as the device uses them and that only this value touches.
    pub unsafe fn new(base: *mut u8, size: u16) -> Queue {
        Queue {
            base,
            size,
            next_avail: 0,
            last_used: 0,
        }
    }

    /// Entries.
    pub fn size(&self) -> u16 {
        self.size
    }

    fn used_offset(&self) -> usize {
        let size = self.size as usize;
        (16 * size + 6 + 2 * size).next_multiple_of(4096)
    }

    /// Writes descriptor `i`: `len` bytes at physical `addr`; `device_writes` for
    /// buffers the device fills; `next` chains another.
    pub fn set_descriptor(
        &mut self,
        i: u16,
        addr: u64,
        len: u32,
        device_writes: bool,
        next: Option<u16>,
    ) {
        let mut flags = if device_writes { DESC_WRITE } else { 0 };
        if next.is_some() {
            flags |= DESC_NEXT;
        }
        // SAFETY: descriptor `i` (< size) lies in our queue memory; 16-byte entries are
        // aligned.
        unsafe {
            let d = self.base.add(16 * usize::from(i % self.size));
            (d as *mut u64).write_volatile(addr);
            (d.add(8) as *mut u32).write_volatile(len);
            (d.add(12) as *mut u16).write_volatile(flags);
            (d.add(14) as *mut u16).write_volatile(next.unwrap_or(0));
        }
    }

    /// Makes the chain starting at descriptor `head` available to the device.
    pub fn push_available(&mut self, head: u16) {
        let avail = 16 * self.size as usize;
        let slot = usize::from(self.next_avail % self.size);
        // SAFETY: the available ring lies in our queue memory.
        unsafe {
            (self.base.add(avail + 4 + 2 * slot) as *mut u16).write_volatile(head);
            fence(Ordering::SeqCst);
            self.next_avail = self.next_avail.wrapping_add(1);
            (self.base.add(avail + 2) as *mut u16).write_volatile(self.next_avail);
        }
        fence(Ordering::SeqCst);
    }

    /// Chains the device has finished that [`pop_used`](Self::pop_used) has not taken
    /// yet (a count that stays above 0 means a completion interrupt went missing).
    pub fn uncollected(&self) -> u16 {
        let used = self.used_offset();
        fence(Ordering::SeqCst);
        // SAFETY: the used ring lies in our queue memory.
        let idx = unsafe { (self.base.add(used + 2) as *const u16).read_volatile() };
        idx.wrapping_sub(self.last_used)
    }

    /// The next completed chain's head descriptor, if the device finished one.
    pub fn pop_used(&mut self) -> Option<u16> {
        let used = self.used_offset();
        fence(Ordering::SeqCst);
        // SAFETY: the used ring lies in our queue memory.
        let idx = unsafe { (self.base.add(used + 2) as *const u16).read_volatile() };
        if idx == self.last_used {
            return None;
        }
        let slot = usize::from(self.last_used % self.size);
        // SAFETY: as above; element `slot` of the used ring.
        let id = unsafe { (self.base.add(used + 4 + 8 * slot) as *const u32).read_volatile() };
        self.last_used = self.last_used.wrapping_add(1);
        Some(id as u16)
    }
}
