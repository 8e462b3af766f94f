//! Threads over raw `clone`: each thread gets an `mmap`'d stack with a guard page
//! and a small thread block that its FS base points to (`CLONE_SETTLS`); joining
//! waits on the `CLONE_CHILD_CLEARTID` futex word the kernel zeroes at exit.
//!
//! Region layout, low to high: `[guard page][stack ...][thread block page]`.

use crate::sys::futex::{futex_wait, futex_wake};
use crate::sys::misc::arch_prctl_set_fs;
use crate::sys::mm::{mmap_anon, mprotect, munmap, Prot, PAGE_SIZE};
use crate::sys::process::*;
use crate::Errno;
use alloc::boxed::Box;
use core::cell::UnsafeCell;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Default stack size of a spawned thread.
pub const DEFAULT_STACK_BYTES: usize = 256 << 10;

/// The clone flags of a thread: same address space, files, handlers and thread
/// group; own TLS; tid reported to the parent and cleared at exit.
pub const THREAD_CLONE_FLAGS: u64 = CLONE_VM
    | CLONE_FS
    | CLONE_FILES
    | CLONE_SIGHAND
    | CLONE_THREAD
    | CLONE_SYSVSEM
    | CLONE_SETTLS
    | CLONE_PARENT_SETTID
    | CLONE_CHILD_CLEARTID;

/// The per-thread block the FS base points to. Its first word points to itself,
/// as the x86_64 TLS ABI expects; the rest of its page is zero so `fs:0x28`
/// (the stack-protector slot C code reads) is valid memory.
#[repr(C)]
pub struct ThreadBlock {
    self_ptr: *const ThreadBlock,
    /// The thread id while the thread lives; 0 once it has exited
    /// (`CLONE_PARENT_SETTID` / `CLONE_CHILD_CLEARTID` word).
    tid: AtomicU32,
    _pad: [u64; 7],
}

impl ThreadBlock {
    const fn empty() -> ThreadBlock {
        ThreadBlock {
            self_ptr: core::ptr::null(),
            tid: AtomicU32::new(0),
            _pad: [0; 7],
        }
    }

    /// The thread id recorded in the block (0 after the thread exited).
    pub fn tid(&self) -> u32 {
        self.tid.load(Ordering::Acquire)
    }
}

struct MainBlock(UnsafeCell<ThreadBlock>);
// SAFETY: written once by `init_main_thread` before any other thread exists; after
// that only the kernel (at exit) and atomic loads touch it.
unsafe impl Sync for MainBlock {}

static MAIN_BLOCK: MainBlock = MainBlock(UnsafeCell::new(ThreadBlock::empty()));
static MAIN_TLS_OK: AtomicBool = AtomicBool::new(false);

/// Sets up the main thread's block: FS base via `arch_prctl(ARCH_SET_FS)` and the
/// clear-tid address via `set_tid_address`. Called once by `_start`; a kernel that
/// lacks `arch_prctl` only loses [`current_block`].
pub(crate) fn init_main_thread() {
    let block = MAIN_BLOCK.0.get();
    // SAFETY: start-up is single-threaded, so this is the only access.
    unsafe { (*block).self_ptr = block };
    // SAFETY: MAIN_BLOCK is a static: valid for the whole process.
    let tid = unsafe { set_tid_address((*block).tid.as_ptr()) };
    // SAFETY: as above; the atomic store only races with nothing yet.
    unsafe { (*block).tid.store(tid as u32, Ordering::Release) };
    // SAFETY: the block is static, so fs:-relative reads stay valid.
    if unsafe { arch_prctl_set_fs(block as usize) }.is_ok() {
        MAIN_TLS_OK.store(true, Ordering::Release);
    }
}

/// The calling thread's block, read through the FS base (`fs:0`). `None` when the
/// main thread's FS base could not be set.
pub fn current_block() -> Option<&'static ThreadBlock> {
    if !MAIN_TLS_OK.load(Ordering::Acquire) {
        return None;
    }
    let p: *const ThreadBlock;
    // SAFETY: every thread of this runtime has FS pointing at a live ThreadBlock
    // whose first word is its own address.
    unsafe {
        core::arch::asm!("mov {}, fs:0", out(reg) p, options(nostack, readonly, preserves_flags))
    };
    // SAFETY: see above; blocks live until their thread is joined.
    Some(unsafe { &*p })
}

core::arch::global_asm!(
    ".globl peios_rt_clone_thread",
    ".type peios_rt_clone_thread,@function",
    // fn(flags: u64, stack: usize, ptid: *mut u32, ctid: *mut u32, tls: usize) -> isize
    "peios_rt_clone_thread:",
    "mov r10, rcx",
    "mov eax, 56",
    "syscall",
    "test rax, rax",
    "jnz 1f",
    // Child: rsp is the new stack, holding [entry, arg] as prepared by `spawn`.
    "xor ebp, ebp",
    "pop rax",
    "pop rdi",
    "and rsp, -16",
    "call rax",
    "ud2",
    "1:",
    "ret",
);

extern "C" {
    fn peios_rt_clone_thread(
        flags: u64,
        stack: usize,
        ptid: *mut u32,
        ctid: *mut u32,
        tls: usize,
    ) -> isize;
}

struct Packet<F, T> {
    f: UnsafeCell<Option<F>>,
    result: UnsafeCell<Option<T>>,
}

extern "C" fn thread_main<F: FnOnce() -> T, T>(packet: *const Packet<F, T>) -> ! {
    // SAFETY: `spawn` passes a packet that stays alive until `join`, which only
    // reads `result` after this thread has exited; nothing else touches `f`.
    unsafe {
        let p = &*packet;
        if let Some(f) = (*p.f.get()).take() {
            *p.result.get() = Some(f());
        }
    }
    exit(0)
}

/// A running thread; [`JoinHandle::join`] waits for it and returns its result.
/// Dropping the handle detaches the thread (its stack is then never freed).
pub struct JoinHandle<T> {
    region: *mut u8,
    region_len: usize,
    block: *const ThreadBlock,
    packet: *mut u8,
    take: unsafe fn(*mut u8) -> Option<T>,
    _t: PhantomData<T>,
}

// SAFETY: the handle only holds pointers to memory owned by the thread pair; the
// result type is Send.
unsafe impl<T: Send> Send for JoinHandle<T> {}

impl<T> JoinHandle<T> {
    /// The thread's id.
    pub fn tid(&self) -> u32 {
        // SAFETY: the block lives until join.
        unsafe { (*self.block).tid() }
    }

    /// Waits until the thread has exited, frees its stack and returns its result.
    pub fn join(self) -> T {
        // SAFETY: the block lives in the region, which is only unmapped below.
        let word = unsafe { &(*self.block).tid };
        loop {
            let tid = word.load(Ordering::Acquire);
            if tid == 0 {
                break;
            }
            // EAGAIN (word changed) and EINTR just mean: look again.
            let _ = futex_wait(word, tid, None, false);
        }
        // SAFETY: the kernel zeroed the tid word after the thread stopped using its
        // stack and block, so the packet and region are ours alone now.
        let result = unsafe { (self.take)(self.packet) };
        // SAFETY: the region was mapped by `spawn` with this length and is unused.
        let _ = unsafe { munmap(self.region, self.region_len) };
        match result {
            Some(r) => r,
            None => crate::sys::process::exit_group(101),
        }
    }
}

unsafe fn take_result<F, T>(packet: *mut u8) -> Option<T> {
    // SAFETY: `packet` came from Box::into_raw of a Packet<F, T> in `spawn`.
    let p = unsafe { Box::from_raw(packet as *mut Packet<F, T>) };
    p.result.into_inner()
}

/// Starts a thread running `f` on a stack of [`DEFAULT_STACK_BYTES`].
pub fn spawn<F, T>(f: F) -> Result<JoinHandle<T>, Errno>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    spawn_with_stack(DEFAULT_STACK_BYTES, f)
}

/// Starts a thread running `f` on a stack of `stack_bytes` (rounded up to pages).
pub fn spawn_with_stack<F, T>(stack_bytes: usize, f: F) -> Result<JoinHandle<T>, Errno>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let stack_bytes = (stack_bytes.max(16 << 10) + PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
    let region_len = PAGE_SIZE + stack_bytes + PAGE_SIZE;
    let region = mmap_anon(region_len, Prot::RW)?;
    // SAFETY: the lowest page of our fresh region becomes the guard page.
    if let Err(e) = unsafe { mprotect(region, PAGE_SIZE, Prot::NONE) } {
        // SAFETY: the region is ours and unused.
        let _ = unsafe { munmap(region, region_len) };
        return Err(e);
    }
    let block_addr = region as usize + PAGE_SIZE + stack_bytes;
    let block = block_addr as *mut ThreadBlock;
    // SAFETY: the top page of the fresh region is writable and ours.
    unsafe {
        block.write(ThreadBlock::empty());
        (*block).self_ptr = block;
        // Non-zero until the kernel overwrites it with the tid, so a join can never
        // mistake "not started yet" for "exited".
        (*block).tid.store(u32::MAX, Ordering::Release);
    }
    let packet = Box::into_raw(Box::new(Packet {
        f: UnsafeCell::new(Some(f)),
        result: UnsafeCell::new(None::<T>),
    }));
    let stack_top = block_addr; // page aligned, so 16-byte aligned
    let sp = stack_top - 16;
    // SAFETY: the two words below the stack top are inside the fresh stack.
    unsafe {
        *(sp as *mut usize) =
            thread_main::<F, T> as extern "C" fn(*const Packet<F, T>) -> ! as usize;
        *((sp + 8) as *mut usize) = packet as usize;
    }
    // SAFETY: the child starts on its own stack in the assembly stub, which pops
    // [entry, arg] and calls `thread_main`; the tid word lives in the block, which
    // stays mapped until join observes the kernel's clear.
    let tid_ptr = unsafe { (*block).tid.as_ptr() };
    // SAFETY: as above.
    let r = unsafe { peios_rt_clone_thread(THREAD_CLONE_FLAGS, sp, tid_ptr, tid_ptr, block_addr) };
    if let Err(e) = Errno::result(r) {
        // SAFETY: no thread was created: the packet and region are still ours.
        unsafe {
            drop(Box::from_raw(packet));
            let _ = munmap(region, region_len);
        }
        return Err(e);
    }
    Ok(JoinHandle {
        region,
        region_len,
        block,
        packet: packet as *mut u8,
        take: take_result::<F, T>,
        _t: PhantomData,
    })
}

/// Wakes threads waiting in [`futex_wait`] on `word` (a convenience for programs).
pub fn wake_all(word: &AtomicU32) {
    let _ = futex_wake(word, i32::MAX as u32, true);
}
