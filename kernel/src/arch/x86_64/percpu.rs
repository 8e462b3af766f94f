//! Per-CPU data reached through the GS base: `gs:0` holds a pointer to the CPU's own
//! [`PerCpu`], so `current()` is one load.

use core::{
    cell::UnsafeCell,
    sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering},
};
use sched::{CpuId, MAX_CPUS};
use x2apic::lapic::LocalApic;
use x86_64::registers::model_specific::GsBase;

/// Data private to one CPU. Fields other CPUs may read are atomics or immutable.
#[repr(C, align(64))]
pub struct PerCpu {
    /// Points at this structure (`gs:0`).
    self_ptr: *const PerCpu,
    /// Logical CPU number (`gs:8`).
    pub cpu_id: CpuId,
    /// Local APIC id.
    pub apic_id: u32,
    /// Top of this CPU's kernel stack for entries from user mode (`gs:16`).
    pub kernel_stack_top: AtomicU64,
    /// Scratch slot for the user stack pointer during `syscall` entry (`gs:24`).
    pub user_rsp_scratch: AtomicU64,
    /// Kernel stack pointer to resume when user mode traps back (`gs:32`, `usermode.rs`).
    pub resume_rsp: AtomicU64,
    /// The user context being run (`gs:40`, `usermode.rs`).
    pub user_context: AtomicU64,
    /// CR3 of the loaded address space's kernel tables (`gs:48`; KPTI entry switch).
    pub kernel_cr3: AtomicU64,
    /// CR3 of its user tables under KPTI, 0 without KPTI (`gs:56`).
    pub user_cr3: AtomicU64,
    /// Second scratch slot for the entry code (`gs:64`).
    pub entry_scratch: AtomicU64,
    /// FS base currently loaded for user mode.
    pub loaded_fs_base: AtomicU64,
    /// The user context whose FPU/SSE state is live in this CPU's registers (0: none).
    pub fpu_owner: AtomicU64,
    /// The CPU is in the polling phase of idle: a kick needs no IPI.
    pub idle_polling: core::sync::atomic::AtomicBool,
    /// The user thread whose task this CPU is polling (`*const Thread`, 0: none).
    pub current_thread: AtomicU64,
    /// NUMA node of this CPU.
    pub node: u32,
    /// Interrupts taken, by kind, for statistics.
    pub timer_interrupts: AtomicU64,
    /// Wake IPIs received.
    pub wake_interrupts: AtomicU64,
    /// Returns from user mode so far: a CPU in user mode (`user_context` set) whose
    /// count stands still far longer than a time slice has lost its timer (`watchdog`).
    pub user_returns: AtomicU64,
    /// Interrupt handlers running on this CPU (nested count); the heap does not grow
    /// while it is non-zero.
    pub irq_depth: AtomicU32,
    /// This CPU's local APIC; touched only by its own CPU with interrupts disabled.
    local_apic: UnsafeCell<Option<LocalApic>>,
}

// SAFETY: the only non-Sync field is `local_apic`, which is used exclusively by the owning
// CPU (enforced by `with_local_apic`, which reads through `current()`).
unsafe impl Sync for PerCpu {}
// SAFETY: as above; a PerCpu is created on the boot CPU and then only used by its owner.
unsafe impl Send for PerCpu {}

static CPUS: [AtomicPtr<PerCpu>; MAX_CPUS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];

/// Allocates the per-CPU block of `cpu` in its entry area (done by the boot CPU for every
/// CPU before start-up): the entry code reads it through GS before switching page tables.
pub fn create(cpu_id: CpuId, apic_id: u32, node: u32) -> &'static PerCpu {
    const _: () = assert!(core::mem::size_of::<PerCpu>() <= 4096);
    let slot = super::entry_area::alloc(Some(cpu_id.index()), 1) as *mut PerCpu;
    let value = PerCpu {
        self_ptr: core::ptr::null(),
        cpu_id,
        apic_id,
        kernel_stack_top: AtomicU64::new(0),
        user_rsp_scratch: AtomicU64::new(0),
        resume_rsp: AtomicU64::new(0),
        user_context: AtomicU64::new(0),
        kernel_cr3: AtomicU64::new(0),
        user_cr3: AtomicU64::new(0),
        entry_scratch: AtomicU64::new(0),
        loaded_fs_base: AtomicU64::new(0),
        fpu_owner: AtomicU64::new(0),
        current_thread: AtomicU64::new(0),
        idle_polling: core::sync::atomic::AtomicBool::new(false),
        node,
        timer_interrupts: AtomicU64::new(0),
        wake_interrupts: AtomicU64::new(0),
        user_returns: AtomicU64::new(0),
        irq_depth: AtomicU32::new(0),
        local_apic: UnsafeCell::new(None),
    };
    // SAFETY: `slot` is a fresh, zeroed, page-aligned entry-area page owned by this CPU
    // block forever.
    let block: &'static mut PerCpu = unsafe {
        slot.write(value);
        &mut *slot
    };
    block.self_ptr = block;
    CPUS[cpu_id.index()].store(block, Ordering::Release);
    block
}

/// Points this CPU's GS base at `block`.
pub fn install(block: &'static PerCpu) {
    GsBase::write(x86_64::VirtAddr::from_ptr(block));
}

/// What GS points at on the boot CPU before its real block exists: a self pointer and
/// CPU number 0, laid out like the first two words of [`PerCpu`].
#[repr(C, align(64))]
struct Placeholder {
    self_ptr: AtomicU64,
    cpu_id: AtomicU64,
}

static PLACEHOLDER: Placeholder = Placeholder {
    self_ptr: AtomicU64::new(0),
    cpu_id: AtomicU64::new(0),
};

/// Points GS at the placeholder (first thing on the boot CPU), so `gs:0` and `gs:8` are
/// readable on every CPU from then on (APs install their real block first thing).
pub fn install_placeholder() {
    PLACEHOLDER
        .self_ptr
        .store(&raw const PLACEHOLDER as u64, Ordering::Relaxed);
    GsBase::write(x86_64::VirtAddr::from_ptr(&raw const PLACEHOLDER));
}

/// The calling CPU's block, or `None` before `install` ran on it.
pub fn try_current() -> Option<&'static PerCpu> {
    let ptr: *const PerCpu;
    // SAFETY: GS points at the placeholder or an installed PerCpu, whose first word is its
    // own address.
    unsafe {
        core::arch::asm!("mov {}, qword ptr gs:[0]", out(reg) ptr, options(nostack, readonly, preserves_flags))
    };
    if ptr.is_null() || ptr as u64 == &raw const PLACEHOLDER as u64 {
        return None;
    }
    // SAFETY: installed blocks are immortal entry-area pages.
    Some(unsafe { &*ptr })
}

/// The calling CPU's block. Panics before per-CPU set-up (a kernel bug).
pub fn current() -> &'static PerCpu {
    try_current().expect("per-CPU data used before install")
}

/// The calling CPU's number: one load from `gs:8` (0 on the boot CPU before set-up).
#[inline]
pub fn current_cpu() -> CpuId {
    let id: u32;
    // SAFETY: GS points at the placeholder or an installed PerCpu; `cpu_id` is at offset 8.
    unsafe {
        core::arch::asm!("mov {:e}, dword ptr gs:[8]", out(reg) id, options(nostack, readonly, preserves_flags))
    };
    CpuId(id)
}

/// Whether the calling CPU is inside an interrupt handler (false before per-CPU set-up,
/// when no handler runs yet).
pub fn in_interrupt() -> bool {
    try_current().is_some_and(|c| c.irq_depth.load(Ordering::Relaxed) != 0)
}

/// Marks the calling CPU as inside an interrupt handler until dropped.
pub struct IrqGuard(Option<&'static PerCpu>);

impl IrqGuard {
    /// Enters handler context.
    pub fn enter() -> IrqGuard {
        let cpu = try_current();
        if let Some(c) = cpu {
            c.irq_depth.fetch_add(1, Ordering::Relaxed);
        }
        IrqGuard(cpu)
    }
}

impl Drop for IrqGuard {
    fn drop(&mut self) {
        if let Some(c) = self.0 {
            c.irq_depth.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The block of `cpu`, if it was created.
pub fn get(cpu: CpuId) -> Option<&'static PerCpu> {
    let ptr = CPUS.get(cpu.index())?.load(Ordering::Acquire);
    // SAFETY: non-null entries point at leaked, immortal blocks.
    (!ptr.is_null()).then(|| unsafe { &*ptr })
}

impl PerCpu {
    /// Stores this CPU's local APIC handle. Must run on the owning CPU.
    pub fn set_local_apic(&self, apic: LocalApic) {
        assert!(
            core::ptr::eq(self, current()),
            "local APIC installed from another CPU"
        );
        x86_64::instructions::interrupts::without_interrupts(|| {
            // SAFETY: we are the owning CPU with interrupts off, so nothing else aliases it.
            unsafe { *self.local_apic.get() = Some(apic) };
        });
    }
}

/// Runs `f` with the calling CPU's local APIC, interrupts disabled.
pub fn with_local_apic<R>(f: impl FnOnce(&mut LocalApic) -> R) -> Option<R> {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let cpu = try_current()?;
        // SAFETY: `cpu` is the calling CPU's block and interrupts are off, so this is the
        // only live reference to its local APIC.
        let apic = unsafe { &mut *cpu.local_apic.get() };
        apic.as_mut().map(f)
    })
}

// Offsets the entry assembly relies on.
const _: () = {
    assert!(core::mem::offset_of!(PerCpu, cpu_id) == 8);
    assert!(core::mem::offset_of!(PerCpu, user_rsp_scratch) == 24);
    assert!(core::mem::offset_of!(PerCpu, resume_rsp) == 32);
    assert!(core::mem::offset_of!(PerCpu, user_context) == 40);
    assert!(core::mem::offset_of!(PerCpu, kernel_cr3) == 48);
    assert!(core::mem::offset_of!(PerCpu, user_cr3) == 56);
    assert!(core::mem::offset_of!(PerCpu, entry_scratch) == 64);
};
