//! The virtio block device (legacy PCI transport, `drivers::virtio_blk`) as an
//! `mm::block::BlockDevice`: requests go on the virtqueue, the device's interrupt
//! collects completions and wakes the futures waiting for them.

use crate::{arch::paging::phys_offset, interrupts};
use alloc::{boxed::Box, vec::Vec};
use core::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, Waker},
};
use drivers::virtio_blk::{self, Queue, Registers, REQUEST_READ, REQUEST_WRITE};
use mm::block::{check_range, BlockDevice, BlockError, BlockFuture, IoBuf};
use spin::{Mutex, Once};
use x86_64::instructions::interrupts::without_interrupts;

/// One request in flight: its header, status byte and data buffer stay here (at fixed
/// heap addresses the device was given) until the device is done.
struct Slot {
    header: Box<[u8; 16]>,
    status: Box<u8>,
    data: Option<IoBuf>,
    done: bool,
    /// Its future was dropped: the slot is freed as soon as the device is done.
    orphaned: bool,
    waker: Option<Waker>,
}

struct State {
    queue: Queue,
    /// Free chain heads (each request uses three consecutive descriptors).
    free: Vec<u16>,
    /// Requests by chain head.
    slots: Vec<Option<Slot>>,
}

/// The device.
pub struct VirtioBlk {
    regs: Registers,
    capacity: u64,
    irq: u8,
    state: Mutex<State>,
}

static DEVICE: Once<VirtioBlk> = Once::new();

/// The physical address of kernel heap memory (the heap lies in the direct map).
fn heap_phys(ptr: *const u8) -> u64 {
    ptr as u64 - phys_offset()
}

/// Finds and starts the first virtio block device, if QEMU has one.
pub fn probe() {
    let Some(pci) = drivers::pci::find(virtio_blk::PCI_VENDOR, virtio_blk::PCI_DEVICE) else {
        return;
    };
    let Some(base) = pci.io_bar(0) else {
        log::warn!("virtio-blk: no I/O BAR");
        return;
    };
    // SAFETY: we drive this device alone from here on, and own the memory we give it.
    unsafe { pci.enable_io_and_bus_master() };
    // SAFETY: BAR 0 of a legacy virtio block device nothing else drives.
    let regs = unsafe { Registers::new(base) };
    let size = regs.begin_init();
    if size == 0 {
        log::warn!("virtio-blk: queue 0 missing");
        return;
    }
    let layout = core::alloc::Layout::from_size_align(virtio_blk::queue_bytes(size), 4096)
        .expect("virtqueue layout");
    // SAFETY: a non-zero size; the memory is never freed (the device keeps using it).
    let memory = unsafe { alloc::alloc::alloc_zeroed(layout) };
    if memory.is_null() {
        log::warn!("virtio-blk: no memory for the queue");
        return;
    }
    // SAFETY: zeroed, page-aligned, sized for `size` entries, owned by the queue forever.
    let queue = unsafe { Queue::new(memory, size) };
    regs.finish_init(heap_phys(memory));
    let capacity = regs.capacity();
    let irq = pci.interrupt_line();
    let heads = size / 3;
    DEVICE.call_once(|| VirtioBlk {
        regs,
        capacity,
        irq,
        state: Mutex::new(State {
            queue,
            free: (0..heads).map(|i| i * 3).collect(),
            slots: (0..size).map(|_| None).collect(),
        }),
    });
    if irq < 24 {
        interrupts::set_irq_handler(irq, on_interrupt);
    }
    crate::kprintln!(
        "virtio-blk: {} sectors ({} MiB), queue {}, IRQ {}",
        capacity,
        capacity / 2048,
        size,
        irq
    );
}

/// The device, if one was found.
pub fn device() -> Option<&'static dyn BlockDevice> {
    DEVICE.get().map(|d| d as &dyn BlockDevice)
}

/// The device's IRQ line (for tests counting its interrupts).
pub fn irq() -> Option<u8> {
    DEVICE.get().map(|d| d.irq)
}

fn on_interrupt() {
    if let Some(d) = DEVICE.get() {
        d.regs.ack_interrupt();
        d.collect();
    }
}

impl VirtioBlk {
    /// Marks every request the device finished as done and wakes its future. Runs in
    /// the interrupt handler too, so it neither allocates nor frees (the heap's lock may
    /// be held by the code it interrupted): orphaned slots are reclaimed by `submit`.
    fn collect(&self) {
        without_interrupts(|| {
            let mut st = self.state.lock();
            while let Some(head) = st.queue.pop_used() {
                if let Some(slot) = st.slots.get_mut(usize::from(head)).and_then(Option::as_mut) {
                    slot.done = true;
                    if let Some(w) = slot.waker.take() {
                        // Waking only queues the task (no allocation, no lock of ours).
                        w.wake();
                    }
                }
            }
        });
    }

    /// Puts a request on the queue; `None` when every chain is in use.
    fn submit(&self, kind: u32, sector: u64, data: IoBuf) -> Result<u16, IoBuf> {
        let head = without_interrupts(|| {
            let mut st = self.state.lock();
            // Chains whose futures were dropped are reclaimed here, in task context.
            for i in 0..st.slots.len() {
                if st.slots[i].as_ref().is_some_and(|s| s.orphaned && s.done) {
                    st.slots[i] = None;
                    st.free.push(i as u16);
                }
            }
            let Some(head) = st.free.pop() else {
                return Err(data);
            };
            let mut header = Box::new([0u8; 16]);
            header[0..4].copy_from_slice(&kind.to_le_bytes());
            header[8..16].copy_from_slice(&sector.to_le_bytes());
            let status = Box::new(0xffu8);
            let len = data.len() as u32;
            let (h, d, s) = (
                heap_phys(header.as_ptr()),
                heap_phys(data.as_ptr()),
                heap_phys(&*status),
            );
            st.queue.set_descriptor(head, h, 16, false, Some(head + 1));
            st.queue
                .set_descriptor(head + 1, d, len, kind == REQUEST_READ, Some(head + 2));
            st.queue.set_descriptor(head + 2, s, 1, true, None);
            st.slots[usize::from(head)] = Some(Slot {
                header,
                status,
                data: Some(data),
                done: false,
                orphaned: false,
                waker: None,
            });
            st.queue.push_available(head);
            Ok(head)
        })?;
        self.regs.notify();
        Ok(head)
    }

    fn request(&self, kind: u32, sector: u64, data: IoBuf) -> BlockFuture {
        if let Err(e) = check_range(self.capacity, sector, data.len()) {
            return Box::pin(core::future::ready(Err(e)));
        }
        let device = DEVICE.get().expect("requests reach the registered device");
        Box::pin(Request {
            device,
            stage: Stage::Unsubmitted {
                kind,
                sector,
                data: Some(data),
            },
        })
    }
}

enum Stage {
    Unsubmitted {
        kind: u32,
        sector: u64,
        data: Option<IoBuf>,
    },
    InFlight(u16),
    /// Completed and handed back: the chain may already serve another request.
    Finished,
}

/// A request's future. Dropped in flight, its slot (and buffer) stays until the device
/// completes it; the chain is then reclaimed by the next request that finds it done.
struct Request {
    device: &'static VirtioBlk,
    stage: Stage,
}

impl Drop for Request {
    fn drop(&mut self) {
        if let Stage::InFlight(head) = self.stage {
            let device = self.device;
            without_interrupts(|| {
                let mut st = device.state.lock();
                let index = usize::from(head);
                match st.slots[index].as_mut() {
                    Some(slot) if slot.done => {
                        st.slots[index] = None;
                        st.free.push(head);
                    }
                    Some(slot) => slot.orphaned = true,
                    None => {}
                }
            });
        }
    }
}

impl Future for Request {
    type Output = Result<IoBuf, BlockError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let device = self.device;
        if let Stage::Unsubmitted { kind, sector, data } = &mut self.stage {
            let buf = data.take().expect("unsubmitted request has its buffer");
            match device.submit(*kind, *sector, buf) {
                Ok(head) => self.stage = Stage::InFlight(head),
                Err(buf) => {
                    // Every chain is busy: try again after this task yields.
                    *data = Some(buf);
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
            }
        }
        let Stage::InFlight(head) = self.stage else {
            unreachable!("submitted above, and not polled after completion");
        };
        // Completions are collected here too, so a lost interrupt only delays.
        device.collect();
        let outcome = without_interrupts(|| {
            let mut st = device.state.lock();
            let slot = st.slots[usize::from(head)]
                .as_mut()
                .expect("an in-flight request has its slot");
            if !slot.done {
                slot.waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let slot = st.slots[usize::from(head)].take().expect("checked above");
            st.free.push(head);
            drop(slot.header);
            let data = slot.data.expect("a finished request has its buffer");
            Poll::Ready(if *slot.status == 0 {
                Ok(data)
            } else {
                Err(BlockError::Io)
            })
        });
        if outcome.is_ready() {
            self.stage = Stage::Finished;
        }
        outcome
    }
}

impl BlockDevice for VirtioBlk {
    fn capacity_sectors(&self) -> u64 {
        self.capacity
    }

    fn read(&self, sector: u64, buf: IoBuf) -> BlockFuture {
        self.request(REQUEST_READ, sector, buf)
    }

    fn write(&self, sector: u64, buf: IoBuf) -> BlockFuture {
        self.request(REQUEST_WRITE, sector, buf)
    }
}
