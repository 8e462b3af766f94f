//! The virtio block devices (legacy PCI transport, `drivers::virtio_blk`) as
//! `mm::block::BlockDevice`s: requests go on the virtqueue (as many in flight as the
//! queue has chains), the device's interrupt (IO-APIC line) collects completions and
//! wakes the futures waiting for them. Devices are named `vda`, `vdb`, ... in PCI slot
//! order, as Linux names them.

use crate::{arch::paging::phys_offset, interrupts};
use alloc::{boxed::Box, vec::Vec};
use conquer_once::spin::OnceCell;
use core::{
    future::Future,
    pin::Pin,
    sync::atomic::{AtomicU64, Ordering},
    task::{Context, Poll, Waker},
};
use drivers::virtio_blk::{self, Queue, Registers, REQUEST_READ, REQUEST_WRITE};
use mm::block::{check_range, BlockDevice, BlockError, BlockFuture, IoBuf};
use spin::Mutex;
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

/// Requests a device served (`/proc/diskstats`).
#[derive(Default)]
pub struct DiskCounters {
    /// Reads completed.
    pub reads: AtomicU64,
    /// Sectors read.
    pub sectors_read: AtomicU64,
    /// Writes completed.
    pub writes: AtomicU64,
    /// Sectors written.
    pub sectors_written: AtomicU64,
    /// Requests on the device now.
    pub in_flight: AtomicU64,
    /// Times the completion poll collected requests that had been finished and left
    /// uncollected for a whole poll period (the interrupt had not run by then).
    pub polled_late: AtomicU64,
    /// Completions collected since boot (interrupt and poll).
    collected: AtomicU64,
}

/// One device.
pub struct VirtioBlk {
    index: usize,
    regs: Registers,
    capacity: u64,
    irq: u8,
    state: Mutex<State>,
    counters: DiskCounters,
}

static DEVICES: OnceCell<Vec<VirtioBlk>> = OnceCell::uninit();

/// The most devices driven.
const MAX_DEVICES: usize = 8;

/// The physical address of kernel heap memory (the heap lies in the direct map).
fn heap_phys(ptr: *const u8) -> u64 {
    ptr as u64 - phys_offset()
}

/// Finds and starts every virtio block device QEMU has.
pub fn probe() {
    let found: Vec<VirtioBlk> =
        drivers::pci::find_all(virtio_blk::PCI_VENDOR, virtio_blk::PCI_DEVICE)
            .take(MAX_DEVICES)
            .enumerate()
            .filter_map(|(index, pci)| start(index, pci))
            .collect();
    let devices = DEVICES.get_or_init(|| found);
    if !devices.is_empty() {
        drop(crate::executor::scheduler().spawn(poll_completions()));
    }
    for d in devices {
        if d.irq < 24 {
            // Devices sharing a line are all looked at by the one handler.
            interrupts::set_irq_handler(d.irq, on_interrupt);
        }
        crate::kprintln!(
            "virtio-blk: {} sectors ({} MiB), queue {}, IRQ {}: /dev/{}",
            d.capacity,
            d.capacity / 2048,
            d.state.lock().queue.size(),
            d.irq,
            d.name()
        );
    }
}

/// How often [`poll_completions`] looks at disks with requests in flight.
const COMPLETION_POLL_NS: u64 = 20_000_000;

/// Collects, every [`COMPLETION_POLL_NS`] while requests are in flight, what the disks
/// finished: the interrupt does it at once, this only when one went missing. The
/// swap test once stopped for good with 85 requests in flight and 53 of them finished
/// and never collected (every waiting task asleep, the interrupt never seen).
///
/// A completion counts as late only when it was already waiting at the previous poll
/// and the interrupt path has not collected it since: a poll that merely meets the
/// interrupt handler at work (a common sight) leaves it to the handler. Measured in
/// session 9 with the IO-APIC entry read at each late poll: its remote-IRR bit was
/// set every time (the interrupt had reached CPU 0, which had not yet run it), on a
/// quiet host no completion waited more than 0.7 ms, and under a host at load 9 CPU
/// 0's vCPU did not run for up to 25 ms. No interrupt was lost.
async fn poll_completions() {
    // Per device: (completions collected, completions waiting) at the previous poll.
    let mut seen = [(0u64, 0u64); MAX_DEVICES];
    loop {
        crate::executor::scheduler().sleep(COMPLETION_POLL_NS).await;
        for (d, seen) in devices().iter().zip(seen.iter_mut()) {
            let collected = d.counters.collected.load(Ordering::Relaxed);
            let waiting = if d.counters.in_flight.load(Ordering::Relaxed) != 0 {
                u64::from(d.uncollected())
            } else {
                0
            };
            // The ring is collected in order: those waiting last time are collected
            // once `collected` has moved past them.
            if waiting != 0 && collected.saturating_sub(seen.0) < seen.1 {
                d.counters.polled_late.fetch_add(1, Ordering::Relaxed);
                d.collect();
                *seen = (d.counters.collected.load(Ordering::Relaxed), 0);
            } else {
                *seen = (collected, waiting);
            }
        }
    }
}

/// Completions [`VirtioBlk::collect`] takes under the lock before it wakes their
/// futures (and looks again).
const WAKE_BATCH: usize = 32;

/// Resets and starts the device at `pci` as device number `index`.
fn start(index: usize, pci: drivers::pci::PciAddress) -> Option<VirtioBlk> {
    let Some(base) = pci.io_bar(0) else {
        log::warn!("virtio-blk: no I/O BAR");
        return None;
    };
    // SAFETY: we drive this device alone from here on, and own the memory we give it.
    unsafe { pci.enable_io_and_bus_master() };
    // SAFETY: BAR 0 of a legacy virtio block device nothing else drives.
    let regs = unsafe { Registers::new(base) };
    let size = regs.begin_init();
    if size == 0 {
        log::warn!("virtio-blk: queue 0 missing");
        return None;
    }
    let layout = core::alloc::Layout::from_size_align(virtio_blk::queue_bytes(size), 4096)
        .expect("virtqueue layout");
    // SAFETY: a non-zero size; the memory is never freed (the device keeps using it).
    let memory = unsafe { alloc::alloc::alloc_zeroed(layout) };
    if memory.is_null() {
        log::warn!("virtio-blk: no memory for the queue");
        return None;
    }
    // SAFETY: zeroed, page-aligned, sized for `size` entries, owned by the queue forever.
    let queue = unsafe { Queue::new(memory, size) };
    regs.finish_init(heap_phys(memory));
    let capacity = regs.capacity();
    let irq = pci.interrupt_line();
    let heads = size / 3;
    Some(VirtioBlk {
        index,
        regs,
        capacity,
        irq,
        state: Mutex::new(State {
            queue,
            free: (0..heads).map(|i| i * 3).collect(),
            slots: (0..size).map(|_| None).collect(),
        }),
        counters: DiskCounters::default(),
    })
}

/// Every device, in name order.
pub fn devices() -> &'static [VirtioBlk] {
    DEVICES.get().map_or(&[], Vec::as_slice)
}

/// The device named `name` (`vda`, `vdb`, ...).
pub fn by_name(name: &str) -> Option<&'static VirtioBlk> {
    devices().iter().find(|d| d.name() == name)
}

/// The first device, if one was found.
pub fn device() -> Option<&'static dyn BlockDevice> {
    devices().first().map(|d| d as &dyn BlockDevice)
}

/// The first device's IRQ line (for tests counting its interrupts).
pub fn irq() -> Option<u8> {
    devices().first().map(|d| d.irq)
}

/// The interrupt of one or more devices: each acknowledges and hands its completions
/// to the futures waiting for them.
fn on_interrupt() {
    for d in devices() {
        if d.regs.ack_interrupt() != 0 {
            d.collect();
        }
    }
}

impl VirtioBlk {
    /// The device's name (`vda`, `vdb`, ...).
    pub fn name(&self) -> alloc::string::String {
        alloc::format!("vd{}", char::from(b'a' + self.index as u8))
    }

    /// Its request counters.
    pub fn counters(&self) -> &DiskCounters {
        &self.counters
    }

    /// Requests the device has finished that no interrupt or poll has collected yet.
    pub fn uncollected(&self) -> u16 {
        without_interrupts(|| self.state.lock().queue.uncollected())
    }

    /// Marks every request the device finished as done and wakes its future. Runs in
    /// the interrupt handler too, so nothing is freed under the state lock (orphaned
    /// slots are reclaimed by `submit`), and the futures are woken after the lock is
    /// let go: a wake may allocate (a run queue past its ring). An allocation under this
    /// lock once deadlocked two CPUs in the swap test: one waited for the heap here,
    /// the other's interrupt handler waited for this lock while the code it had
    /// interrupted held the heap (the heap's lock now keeps interrupts off as well).
    fn collect(&self) {
        let mut woken: [Option<Waker>; WAKE_BATCH] = [const { None }; WAKE_BATCH];
        loop {
            let mut n = 0;
            let more = without_interrupts(|| {
                let mut st = self.state.lock();
                while n < WAKE_BATCH {
                    let Some(head) = st.queue.pop_used() else {
                        return false;
                    };
                    self.counters.collected.fetch_add(1, Ordering::Relaxed);
                    if let Some(slot) = st.slots.get_mut(usize::from(head)).and_then(Option::as_mut)
                    {
                        slot.done = true;
                        woken[n] = slot.waker.take();
                        n += 1;
                    }
                }
                true
            });
            for w in woken.iter_mut().take(n).filter_map(Option::take) {
                w.wake();
            }
            if !more {
                return;
            }
        }
    }

    /// Puts a request on the queue; `None` when every chain is in use.
    fn submit(&self, kind: u32, sector: u64, data: IoBuf) -> Result<u16, IoBuf> {
        // Nothing is allocated or freed under the state lock: the interrupt handler
        // takes that lock, and may have interrupted a holder of the heap's lock.
        let mut header = Box::new([0u8; 16]);
        header[0..4].copy_from_slice(&kind.to_le_bytes());
        header[8..16].copy_from_slice(&sector.to_le_bytes());
        let status = Box::new(0xffu8);
        let mut reclaimed: [Option<Slot>; 4] = Default::default();
        let head = without_interrupts(|| {
            let mut st = self.state.lock();
            // Chains whose futures were dropped are reclaimed here (a few at a time),
            // and freed after the lock.
            let mut n = 0;
            for i in 0..st.slots.len() {
                if n == reclaimed.len() {
                    break;
                }
                if st.slots[i].as_ref().is_some_and(|s| s.orphaned && s.done) {
                    reclaimed[n] = st.slots[i].take();
                    n += 1;
                    st.free.push(i as u16);
                }
            }
            let Some(head) = st.free.pop() else {
                return Err((data, header, status));
            };
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
        })
        .map_err(|(data, _, _)| data)?;
        drop(reclaimed);
        self.counters.in_flight.fetch_add(1, Ordering::Relaxed);
        self.regs.notify();
        Ok(head)
    }

    fn request(&self, kind: u32, sector: u64, data: IoBuf) -> BlockFuture {
        if let Err(e) = check_range(self.capacity, sector, data.len()) {
            return Box::pin(core::future::ready(Err(e)));
        }
        let device = &devices()[self.index];
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
            // Freed after the lock (see `submit`).
            let finished = without_interrupts(|| {
                let mut st = device.state.lock();
                let index = usize::from(head);
                match st.slots[index].as_mut() {
                    Some(slot) if slot.done => {
                        st.free.push(head);
                        st.slots[index].take()
                    }
                    Some(slot) => {
                        slot.orphaned = true;
                        None
                    }
                    None => None,
                }
            });
            drop(finished);
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
                    // Every chain is busy: collect what finished (the chains come free
                    // only when their owners see it) and try again after this task
                    // yields.
                    device.collect();
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
        // The finished slot leaves the lock before anything in it is freed (see `submit`).
        let finished = without_interrupts(|| {
            let mut st = device.state.lock();
            let slot = st.slots[usize::from(head)]
                .as_mut()
                .expect("an in-flight request has its slot");
            if !slot.done {
                slot.waker = Some(cx.waker().clone());
                return None;
            }
            st.free.push(head);
            st.slots[usize::from(head)].take()
        });
        let outcome = match finished {
            None => Poll::Pending,
            Some(slot) => {
                let kind = u32::from_le_bytes([
                    slot.header[0],
                    slot.header[1],
                    slot.header[2],
                    slot.header[3],
                ]);
                let data = slot.data.expect("a finished request has its buffer");
                let c = &device.counters;
                c.in_flight.fetch_sub(1, Ordering::Relaxed);
                let sectors = (data.len() / mm::block::SECTOR_SIZE) as u64;
                if kind == REQUEST_READ {
                    c.reads.fetch_add(1, Ordering::Relaxed);
                    c.sectors_read.fetch_add(sectors, Ordering::Relaxed);
                } else {
                    c.writes.fetch_add(1, Ordering::Relaxed);
                    c.sectors_written.fetch_add(sectors, Ordering::Relaxed);
                }
                Poll::Ready(if *slot.status == 0 {
                    Ok(data)
                } else {
                    Err(BlockError::Io)
                })
            }
        };
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
