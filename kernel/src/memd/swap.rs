//! The kernel's side of swap (`mm::swap`): the executor runs swap I/O tasks, a small
//! table resolves `/dev/vdX` names to the virtio disks for swapon (kept thin, to move
//! onto the VFS when there is one), and swapon/swapoff themselves, gated on
//! SeCreatePagefilePrivilege.
//!
//! Reclaim lives beside it in [`super::reclaim`].

use crate::proc::thread::Thread;
use crate::virtio_blk::VirtioBlk;
use alloc::{boxed::Box, string::String, sync::Arc, vec::Vec};
use core::{
    future::Future,
    pin::Pin,
    sync::atomic::{AtomicBool, Ordering},
    task::{Context, Waker},
};
use errno::{Errno, SysResult};
use mm::block::{BlockDevice, BlockFuture, IoBuf};
use mm::fault::WaitReason;
use mm::swap::file::SwapFile;
use mm::swap::{AreaKind, Spawner, Swap, SwapoffStep};
use sched::MAX_CPUS;
use security::Privilege;
use spin::Mutex;

/// swapon's `SWAP_FLAG_PREFER`: the low 15 bits are the priority.
const SWAP_FLAG_PREFER: u64 = 0x8000;
const SWAP_FLAG_PRIO_MASK: u64 = 0x7fff;
/// `SWAP_FLAG_DISCARD` and its two refinements: accepted (a virtio disk here does no
/// discard, so there is nothing to do).
const SWAP_FLAG_DISCARD_ALL: u64 = 0x10000 | 0x20000 | 0x40000;

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Per CPU: a synchronous kernel access to user memory is faulting here, so a read it
/// starts is kept for it to drive itself ([`kernel_access_fault`]).
static INLINE: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
static INLINE_TASK: [Mutex<Option<Task>>; MAX_CPUS] = [const { Mutex::new(None) }; MAX_CPUS];

/// How long a synchronous kernel access waits for a page another fault is reading,
/// or for reclaim to free a frame, before its syscall gives up the CPU: the copy
/// fails, the thread waits for the page as a fault does and runs the syscall again.
const KERNEL_ACCESS_WAIT_NS: u64 = 200_000_000;

/// Puts swap I/O on the calling CPU's executor (or hands it to the kernel access
/// faulting on this CPU).
struct ExecutorSpawner;

impl Spawner for ExecutorSpawner {
    fn spawn(&self, task: Task) {
        let cpu = crate::arch::percpu::current_cpu().0 as usize;
        if INLINE[cpu].load(Ordering::Relaxed) {
            let mut slot = INLINE_TASK[cpu].lock();
            if slot.is_none() {
                *slot = Some(task);
                return;
            }
        }
        drop(crate::executor::scheduler().spawn(task));
    }
}

/// The spawner that runs I/O tasks on the executor (page-cache reads too), handing a
/// task to a kernel access that faults on this CPU to drive itself.
pub fn io_spawner() -> Arc<dyn Spawner> {
    Arc::new(ExecutorSpawner)
}

/// Polls `task` to completion on this CPU (the block request makes progress when
/// polled, so no interrupt or executor is needed), until `deadline_ns`: a task still
/// unfinished then (every request chain held by tasks this CPU would have to run)
/// goes to the executor, and the CPU is not held any longer.
fn drive(mut task: Task, deadline_ns: u64) {
    let mut cx = Context::from_waker(Waker::noop());
    while task.as_mut().poll(&mut cx).is_pending() {
        if crate::time::now_ns() > deadline_ns {
            drop(crate::executor::scheduler().spawn(task));
            return;
        }
        crate::arch::cpu::relax();
    }
}

/// A fault taken by the kernel's user-copy routine (a syscall reading or writing user
/// memory), which cannot park: a swap-in it starts is driven right here, and a wait
/// for another fault's read or for reclaim is spun through for a bounded time, then
/// kept for the thread loop to await before it runs the syscall again. True when the
/// access may be retried.
pub fn kernel_access_fault(
    space: &crate::mem::aspace::AddressSpace,
    addr: u64,
    access: mm::fault::Access,
) -> bool {
    let cpu = crate::arch::percpu::current_cpu().0 as usize;
    let deadline = crate::time::now_ns() + KERNEL_ACCESS_WAIT_NS;
    loop {
        INLINE[cpu].store(true, Ordering::Relaxed);
        let result = space.mm().fault(addr, access, false);
        INLINE[cpu].store(false, Ordering::Relaxed);
        let stashed = INLINE_TASK[cpu].lock().take();
        if let Some(task) = stashed {
            drive(task, deadline);
        }
        match result {
            Ok(_) => return true,
            // Only the waits swap and reclaim create are worth spinning through.
            Err(mm::fault::FaultError::NeedsWait(wait))
                if matches!(
                    wait.reason(),
                    WaitReason::SwapIn { .. }
                        | WaitReason::Memory
                        | WaitReason::PageLocked { .. }
                        | WaitReason::PageReading { .. }
                ) =>
            {
                while !wait.is_ready() {
                    if crate::time::now_ns() > deadline {
                        // A slow disk or a long reclaim: the copy fails now, and the
                        // thread loop awaits the page and runs the syscall again (as
                        // for a userfaultfd page), instead of the syscall seeing EFAULT.
                        super::userfaultfd::park_kernel_access(wait);
                        return false;
                    }
                    crate::arch::cpu::relax();
                }
                if crate::time::now_ns() > deadline {
                    return false;
                }
            }
            // A userfaultfd holds the page: the copy fails now, and the thread loop
            // awaits the handler and runs the syscall again.
            Err(mm::fault::FaultError::NeedsWait(wait))
                if matches!(wait.reason(), WaitReason::Userfault { .. }) =>
            {
                super::userfaultfd::park_kernel_access(wait);
                return false;
            }
            Err(_) => return false,
        }
    }
}

/// A virtio disk as `mm`'s block device.
struct Disk(&'static VirtioBlk);

impl BlockDevice for Disk {
    fn capacity_sectors(&self) -> u64 {
        self.0.capacity_sectors()
    }

    fn read(&self, sector: u64, buf: IoBuf) -> BlockFuture {
        self.0.read(sector, buf)
    }

    fn write(&self, sector: u64, buf: IoBuf) -> BlockFuture {
        self.0.write(sector, buf)
    }
}

/// The system's swap (shared with every address space).
pub fn swap() -> &'static Arc<Swap> {
    crate::mem::aspace::tunables().swap()
}

/// Starts the swap layer: its I/O runs on the executor (reclaim's tasks, which write
/// to it, start after: `reclaim::start`).
pub fn init() {
    swap().set_spawner(Arc::new(ExecutorSpawner));
}

/// The block device `path` names (`/dev/vda`, `/dev/vdb`, ...).
pub fn block_device(path: &str) -> Option<Arc<dyn BlockDevice>> {
    let name = path.strip_prefix("/dev/")?;
    crate::virtio_blk::by_name(name).map(|d| Arc::new(Disk(d)) as Arc<dyn BlockDevice>)
}

/// Reads the path argument of swapon/swapoff and checks the caller's privilege
/// (SeCreatePagefilePrivilege, EPERM without it; checked first, as Linux checks
/// CAP_SYS_ADMIN before the path).
fn privileged_path(thread: &Thread, path: u64) -> SysResult<String> {
    if !thread
        .process
        .token
        .read()
        .has_privilege(Privilege::SeCreatePagefilePrivilege)
    {
        return Err(Errno::EPERM);
    }
    let raw = crate::arch::uaccess::read_user_cstr(path, 4096)?;
    let name = core::str::from_utf8(&raw).map_err(|_| Errno::ENOENT)?;
    if name.is_empty() {
        return Err(Errno::ENOENT);
    }
    Ok(String::from(name))
}

/// A swap file at `name` (resolved from the caller's working directory, with the
/// caller's access): its canonical path and the device over its blocks, mapped now
/// (Linux's `swap_activate`). The walk's errors (ENOENT, ...); EINVAL for a file no
/// filesystem here can place swap on, or one with holes.
fn swap_file(thread: &Thread, name: &str) -> SysResult<(String, Arc<dyn BlockDevice>)> {
    let caller = crate::vfs::Caller {
        pid: thread.process.pid,
        token: thread.process.token.read().clone(),
    };
    let cwd = thread.process.fs.lock().cwd.clone();
    let open = crate::vfs::mount::open(&caller, &cwd, name, 0, 0)?;
    let canonical = open.path().map_or_else(|| String::from(name), String::from);
    let (disk, map, size) = open.file().swap_blocks()?;
    let file = SwapFile::new(disk, &map, size).map_err(Errno::from)?;
    Ok((canonical, Arc::new(file)))
}

/// The name an active area is known by for `swapoff(name)`: a `/dev` disk's own
/// name, else the canonical path of the file. ENOENT for a file that does not exist.
fn area_name(thread: &Thread, name: &str) -> SysResult<String> {
    if swap().find(name).is_some() || block_device(name).is_some() {
        return Ok(String::from(name));
    }
    let caller = crate::vfs::Caller {
        pid: thread.process.pid,
        token: thread.process.token.read().clone(),
    };
    let cwd = thread.process.fs.lock().cwd.clone();
    let r = crate::vfs::mount::resolve(&caller, &cwd, name, true)?;
    if r.found == pathwalk::Found::Missing {
        return Err(Errno::ENOENT);
    }
    Ok(r.path)
}

/// Whether `device` takes writes: its first page read and written back as it was.
/// A swap file on a read-only disk is refused with EROFS up front (Linux opens the
/// file for writing), rather than every swap-out failing later.
async fn check_writable(device: &Arc<dyn BlockDevice>) -> SysResult<()> {
    let buf = alloc::vec![0u8; mm::phys::PAGE_BYTES].into_boxed_slice();
    let page = device.read(0, buf).await.map_err(|_| Errno::EINVAL)?;
    device.write(0, page).await.map_err(|_| Errno::EROFS)?;
    Ok(())
}

/// `swapon(path, flags)`: reads the swap header of the device, or of the regular file
/// on an ext4 disk, `path` names and adds it as a swap area (a file's blocks are
/// mapped once here; its swap I/O then goes straight to them). EINVAL for a bad
/// header, unknown flags, or a file with holes or on no ext4 disk; EBUSY if already
/// on; ENOENT for a name that is neither; EROFS for a file on a read-only disk.
/// The checks run at once; the returned future activates the area.
pub fn swapon(
    thread: &Thread,
    path: u64,
    flags: u64,
) -> SysResult<impl Future<Output = SysResult<u64>> + Send + 'static> {
    let (name, device, kind, priority) = (|| {
        let name = privileged_path(thread, path)?;
        if flags & !(SWAP_FLAG_PREFER | SWAP_FLAG_PRIO_MASK | SWAP_FLAG_DISCARD_ALL) != 0 {
            return Err(Errno::EINVAL);
        }
        let priority =
            (flags & SWAP_FLAG_PREFER != 0).then_some((flags & SWAP_FLAG_PRIO_MASK) as i32);
        if let Some(device) = block_device(&name) {
            return Ok((name, device, AreaKind::Partition, priority));
        }
        if swap().find(&name).is_some() {
            return Err(Errno::EBUSY);
        }
        let (name, device) = swap_file(thread, &name)?;
        Ok((name, device, AreaKind::File, priority))
    })()?;
    Ok(async move {
        if kind == AreaKind::File {
            if swap().find(&name).is_some() {
                return Err(Errno::EBUSY);
            }
            check_writable(&device).await?;
        }
        let id = swap()
            .activate_as(&name, device, priority, kind)
            .await
            .map_err(Errno::from)?;
        note_swap_size();
        crate::kprintln!("Adding swap area {name} (area {id}, {})", kind.as_str());
        Ok(0)
    })
}

/// `swapoff(path)`: stops new swap-outs to the area, brings every page stored there
/// back into memory (the caller waits, as on Linux), then removes it. ENOMEM when the
/// pages cannot all come back (the area stays on), EINVAL for a path that is not an
/// active area, ENOENT for a file that does not exist.
/// The checks run at once; the returned future drains and removes the area.
pub fn swapoff(
    thread: &Thread,
    path: u64,
) -> SysResult<impl Future<Output = SysResult<u64>> + Send + 'static> {
    let name = area_name(thread, &privileged_path(thread, path)?)?;
    let id = swap().find(&name).ok_or(Errno::EINVAL)?;
    Ok(async move {
        swap().set_draining(id, true);
        match bring_back(id).await {
            Ok(()) => {
                swap().deactivate(id).map_err(Errno::from)?;
                note_swap_size();
                crate::kprintln!("Removed swap area {name}");
                Ok(0)
            }
            Err(e) => {
                swap().set_draining(id, false);
                Err(e)
            }
        }
    })
}

/// The commit limit counts swap space (overcommit modes 0 and 2).
fn note_swap_size() {
    crate::mem::aspace::tunables()
        .commitment()
        .set_swap_pages(swap().totals().0);
}

/// Faults every page of area `id` back into every process, and reads every shmem
/// page stored there back into its page cache.
async fn bring_back(id: u8) -> SysResult<()> {
    for round in 0.. {
        for process in crate::proc::all() {
            let space = process.address_space();
            loop {
                match space.mm().swapoff_step(id).map_err(Errno::from)? {
                    SwapoffStep::Done => break,
                    SwapoffStep::Again => sched::yield_now().await,
                    SwapoffStep::Wait(wait) => wait.await,
                }
            }
        }
        // Shared memory's pages in the area (tmpfs files, memfds, shared anonymous
        // memory), held by no process.
        for object in mm::swap::shmem::shmem_objects() {
            loop {
                match object.swapoff_step(id).map_err(Errno::from)? {
                    SwapoffStep::Done => break,
                    SwapoffStep::Again => sched::yield_now().await,
                    SwapoffStep::Wait(wait) => wait.await,
                }
            }
        }
        let area = swap().area(id).ok_or(Errno::EINVAL)?;
        if area.usage().0 == 0 {
            return Ok(());
        }
        // Slots still held: write-outs finishing, or a process forked meanwhile.
        if round >= 100 {
            return Err(Errno::EBUSY);
        }
        let deadline = crate::time::now_ns() + 10_000_000;
        crate::executor::scheduler().sleep_until(deadline).await;
    }
    Ok(())
}

/// `/proc/swaps`.
pub fn proc_swaps() -> String {
    use core::fmt::Write;
    let mut out = String::from("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n");
    for a in swap().areas() {
        let _ = writeln!(
            out,
            "{:<40}{:<10}\t{}\t\t{}\t\t{}",
            a.name,
            a.kind.as_str(),
            a.pages * 4,
            a.used * 4,
            a.priority
        );
    }
    out
}

/// `/proc/diskstats`: requests and sectors per disk (Linux's first eleven fields).
pub fn proc_diskstats() -> String {
    use core::fmt::Write;
    use core::sync::atomic::Ordering::Relaxed;
    let mut out = String::new();
    for (i, d) in crate::virtio_blk::devices().iter().enumerate() {
        let c = d.counters();
        let _ = writeln!(
            out,
            "{:>4} {:>7} {} {} 0 {} 0 {} 0 {} 0 {} 0 0",
            253,
            i * 16,
            d.name(),
            c.reads.load(Relaxed),
            c.sectors_read.load(Relaxed),
            c.writes.load(Relaxed),
            c.sectors_written.load(Relaxed),
            c.in_flight.load(Relaxed),
        );
    }
    out
}

/// How much of a range [`page_out`] takes at a time, so each list of pages taken is a
/// small heap allocation (a list for a whole 150 MiB range was a megabyte at once, at
/// the moment memory is shortest).
const PAGE_OUT_STEP_BYTES: u64 = 4 << 20;

/// `MADV_PAGEOUT` of `[start, end)`: the pages reclaim could take go to swap now (they
/// count in VmSwap when the call returns, as on Linux); the writes run as one task,
/// a step's pages at a time. Returns the pages taken.
pub fn page_out(space: &crate::mem::aspace::AddressSpace, start: u64, end: u64) -> usize {
    let mut steps: Vec<Vec<mm::swap::PageOut>> = Vec::new();
    let mut taken = 0;
    let mut at = start;
    while at < end {
        let stop = at.saturating_add(PAGE_OUT_STEP_BYTES).min(end);
        let mut pages = Vec::new();
        space.mm().page_out(at, stop, &mut pages);
        taken += pages.len();
        if !pages.is_empty() {
            steps.push(pages);
        }
        at = stop;
    }
    if !steps.is_empty() {
        drop(crate::executor::scheduler().spawn(async move {
            for pages in steps {
                swap()
                    .write_out(pages, crate::mem::frames::mm_frames().clone())
                    .await;
            }
        }));
    }
    taken
}
