//! Address-space switching and TLB shootdown. A CPU keeps a user address space loaded
//! (lazily) until another one replaces it; unmapping flushes the local TLB and queues a
//! request on each other CPU in the address space's active set (lock-free per-CPU
//! queues), with one IPI each, then waits for their acknowledgements. The handler drains
//! its queue, so requests that pile up are served by one interrupt.

use super::{apic, paging, percpu};

/// What the shootdown and lazy-switching code knows of an address space: its roots and
/// the CPUs that have it loaded. Its address identifies the address space.
pub struct TlbState {
    /// Kernel-mode root (CR3).
    root: u64,
    /// KPTI user root (0 without KPTI).
    user_root: u64,
    /// CPUs that have it loaded (bit per CPU).
    pub active_cpus: AtomicU64,
}

impl TlbState {
    /// The state of an address space with these roots.
    pub fn new(root: u64, user_root: u64) -> Self {
        Self {
            root,
            user_root,
            active_cpus: AtomicU64::new(0),
        }
    }
}

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use crossbeam_queue::ArrayQueue;
use drivers::apic::vectors;
use sched::{CpuId, MAX_CPUS};
use x86_64::{
    instructions::tlb,
    registers::control::{Cr3, Cr3Flags},
    structures::paging::PhysFrame,
    PhysAddr, VirtAddr,
};

/// Per CPU: the address space whose tables are loaded (`*const TlbState`, 0: the
/// kernel's). Switching is lazy: a CPU keeps a user address space loaded after its thread
/// stops running (as Linux's lazy TLB mode does), so a CPU that runs the same process
/// again, or only kernel tasks in between, never reloads CR3.
static LOADED: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Serialises address-space teardown (rare: process exit and exec).
static TEARDOWN: spin::Mutex<()> = spin::Mutex::new(());

fn write_cr3(root: u64) {
    // SAFETY: every root shares the kernel half, so the running code and data stay mapped.
    unsafe {
        Cr3::write(
            PhysFrame::containing_address(PhysAddr::new(root)),
            Cr3Flags::empty(),
        )
    };
}

/// Loads `space` on the calling CPU (if it is not loaded already) and marks the CPU in its
/// active set; the previously loaded space loses the CPU from its set.
pub fn activate(space: &TlbState) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let cpu = percpu::current_cpu().index();
        let me = space as *const TlbState as u64;
        let previous = LOADED[cpu].load(Ordering::Relaxed);
        // Store IN_USE, then load FLUSH_PENDING (both SeqCst): pairs with the sender in
        // `flush_address_space`, so a flush skipped for a lazy CPU is seen here.
        IN_USE[cpu].store(true, Ordering::SeqCst);
        let pending = FLUSH_PENDING[cpu].swap(false, Ordering::SeqCst);
        if previous == me {
            if pending {
                tlb::flush_all();
            }
            return;
        }
        let bit = 1u64 << cpu;
        space.active_cpus.fetch_or(bit, Ordering::SeqCst);
        write_cr3(space.root);
        LOADED[cpu].store(me, Ordering::Relaxed);
        let block = percpu::current();
        block.kernel_cr3.store(space.root, Ordering::Relaxed);
        block.user_cr3.store(space.user_root, Ordering::Relaxed);
        if previous != 0 {
            // SAFETY: a space stays alive while any CPU has it in LOADED: `release` (run
            // before its tables are freed) clears those entries with interrupts-off handshakes,
            // and this block runs with interrupts off.
            let old = unsafe { &*(previous as *const TlbState) };
            old.active_cpus.fetch_and(!bit, Ordering::SeqCst);
        }
    });
}

/// The calling CPU stops running user code of its loaded address space (end of a thread
/// task's poll): from now on shootdowns for it may be deferred to its next `activate`.
pub fn leave() {
    IN_USE[percpu::current_cpu().index()].store(false, Ordering::SeqCst);
}

/// Per CPU: running a user thread (its loaded address space's TLB entries may be used).
static IN_USE: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
/// Per CPU: a shootdown was skipped while it was lazy; flush before running user code.
static FLUSH_PENDING: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// Takes the calling CPU (`cpu`) off `space`, which it has loaded: back to the kernel
/// root, nothing loaded, out of the space's active set. Interrupts are off.
fn unload(cpu: usize, space: &TlbState) {
    write_cr3(paging::kernel_root());
    LOADED[cpu].store(0, Ordering::Relaxed);
    percpu::current().user_cr3.store(0, Ordering::Relaxed);
    space
        .active_cpus
        .fetch_and(!(1u64 << cpu), Ordering::SeqCst);
}

/// Makes sure no CPU still has `space` loaded (lazily or not) before its tables are freed.
pub fn release(space: &TlbState) {
    let _guard = TEARDOWN.lock();
    let me = percpu::current_cpu();
    let ptr = space as *const TlbState as u64;
    x86_64::instructions::interrupts::without_interrupts(|| {
        if LOADED[me.index()].load(Ordering::Relaxed) == ptr {
            unload(me.index(), space);
        }
    });
    let active = space.active_cpus.load(Ordering::SeqCst) & !(1 << me.index());
    if active != 0 {
        broadcast(active, |ack| Request::Release { space: ptr, ack });
    }
}

/// A request queued to another CPU.
#[derive(Clone, Copy)]
enum Request {
    /// Flush `[start, end)` if `space` is loaded there (a full flush past 64 pages).
    Flush {
        space: u64,
        start: u64,
        end: u64,
        ack: *const AtomicU32,
    },
    /// `space` is being torn down: leave it if it is loaded there.
    Release { space: u64, ack: *const AtomicU32 },
    /// Flush `[start, end)` if `space` is loaded there; nobody waits for it.
    Hint { space: u64, start: u64, end: u64 },
}

// SAFETY: the pointers are only dereferenced by the handler while the sender waits for
// the acknowledgement, which keeps both the address space and the counter alive.
unsafe impl Send for Request {}

/// Requests waiting for each CPU (lock-free; a full queue makes the sender wait for room).
static QUEUES: conquer_once::spin::OnceCell<alloc::vec::Vec<ArrayQueue<Request>>> =
    conquer_once::spin::OnceCell::uninit();
/// Pages above which a range flush becomes a full flush.
const FULL_FLUSH_PAGES: u64 = 64;

fn queues() -> &'static [ArrayQueue<Request>] {
    QUEUES.get_or_init(|| (0..MAX_CPUS).map(|_| ArrayQueue::new(64)).collect())
}

fn flush_local(start: u64, end: u64) {
    if end.saturating_sub(start) <= FULL_FLUSH_PAGES * 4096 {
        let mut va = start;
        while va < end {
            tlb::flush(VirtAddr::new(va));
            va += 4096;
        }
    } else {
        tlb::flush_all();
    }
}

/// Sends `make(ack)` to every CPU in `targets` and waits until all have handled it.
fn broadcast(targets: u64, make: impl Fn(*const AtomicU32) -> Request) {
    let ack = AtomicU32::new(0);
    let mut sent = 0;
    for cpu in (0..MAX_CPUS as u32).filter(|c| targets & (1 << c) != 0) {
        let Some(target) = percpu::get(CpuId(cpu)) else {
            continue;
        };
        let mut request = make(&ack);
        while let Err(back) = queues()[cpu as usize].push(request) {
            request = back;
            core::hint::spin_loop();
        }
        apic::send_ipi(target.apic_id, vectors::TLB_SHOOTDOWN);
        sent += 1;
    }
    let mut backoff = mm::cpu::Backoff::new();
    while ack.load(Ordering::Acquire) < sent {
        backoff.snooze();
    }
}

/// Flushes `[start, end)` of `space` on every CPU that may cache it: locally, and through
/// each other active CPU's request queue plus one IPI, waiting for their acknowledgements.
/// Callers batch: one call per operation, after all its entries changed.
pub fn flush_address_space(space: &TlbState, start: u64, end: u64) {
    let others = flush_here_and_mark_lazy(space, start, end);
    if others != 0 {
        let ptr = space as *const TlbState as u64;
        broadcast(others, |ack| Request::Flush {
            space: ptr,
            start,
            end,
            ack,
        });
    }
}

/// Asks every CPU running `space` to flush `[start, end)` soon, without waiting:
/// DAMON's sampling. A full queue drops the hint.
pub fn hint_flush_address_space(space: &TlbState, start: u64, end: u64) {
    let others = flush_here_and_mark_lazy(space, start, end);
    let ptr = space as *const TlbState as u64;
    for cpu in (0..MAX_CPUS as u32).filter(|c| others & (1 << c) != 0) {
        let Some(target) = percpu::get(CpuId(cpu)) else {
            continue;
        };
        let hint = Request::Hint {
            space: ptr,
            start,
            end,
        };
        if queues()[cpu as usize].push(hint).is_ok() {
            apic::send_ipi(target.apic_id, vectors::TLB_SHOOTDOWN);
        }
    }
}

/// The part of a shootdown every sender does: flushes here if `space` is active on this
/// CPU, marks every other CPU that has it a flush pending, and returns those of them
/// running a thread of it now (the ones to interrupt).
fn flush_here_and_mark_lazy(space: &TlbState, start: u64, end: u64) -> u64 {
    let me = percpu::current_cpu();
    let active = space.active_cpus.load(Ordering::SeqCst);
    if active & (1 << me.index()) != 0 {
        flush_local(start, end);
    }
    // A CPU that only has the address space loaded lazily (it runs no thread of it) is
    // not interrupted: it flushes when it next runs one (`activate`). Store the pending
    // mark, then load IN_USE (SeqCst), pairing with `activate`.
    let candidates = active & !(1 << me.index());
    let mut others = candidates;
    for cpu in (0..MAX_CPUS).filter(|c| candidates & (1 << c) != 0) {
        FLUSH_PENDING[cpu].store(true, Ordering::SeqCst);
        if !IN_USE[cpu].load(Ordering::SeqCst) {
            others &= !(1 << cpu);
        }
    }
    others
}

/// The shootdown IPI handler: carry out every queued request, acknowledging each.
pub fn handle_shootdown() {
    let cpu = percpu::current_cpu().index();
    while let Some(request) = queues()[cpu].pop() {
        let loaded = LOADED[cpu].load(Ordering::Relaxed);
        let ack = match request {
            Request::Flush {
                space,
                start,
                end,
                ack,
            } => {
                if loaded == space {
                    flush_local(start, end);
                }
                ack
            }
            Request::Release { space, ack } => {
                if loaded == space {
                    // SAFETY: the releasing CPU waits for our acknowledgement before freeing it.
                    unload(cpu, unsafe { &*(space as *const TlbState) });
                }
                ack
            }
            Request::Hint { space, start, end } => {
                // Only compared, never dereferenced: the space may be gone by now.
                if loaded == space {
                    flush_local(start, end);
                }
                continue;
            }
        };
        // SAFETY: the sender keeps the counter alive until every acknowledgement arrived.
        unsafe { (*ack).fetch_add(1, Ordering::Release) };
    }
}
