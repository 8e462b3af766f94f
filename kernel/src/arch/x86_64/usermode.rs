//! Entering and leaving user mode. A user thread is a future: its loop calls
//! [`run_user`], which switches to ring 3 with the registers of a [`UserContext`] and
//! *returns* when user mode makes a system call or takes a trap, with the user registers
//! saved back into the context. No kernel stack is kept per thread: traps from ring 3 land
//! on the CPU's small TSS stack, are copied into the context, and resume the executor's
//! stack where `run_user` was called.

use super::{gdt, percpu};
use core::{
    arch::global_asm,
    mem::offset_of,
    sync::atomic::{AtomicBool, Ordering},
};
use x86_64::registers::{
    model_specific::{Efer, EferFlags, FsBase, LStar, SFMask, Star},
    rflags::RFlags,
};

/// How the context came back from user mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum TrapKind {
    /// `syscall`: RAX holds the number, RCX/R11 the user RIP/RFLAGS.
    Syscall = 0,
    /// An exception or interrupt; `vector`, `error_code` and `cr2` say which (set by the
    /// entry assembly, never by Rust).
    #[allow(dead_code)]
    Trap = 1,
    /// Not from a trap (new thread, exec, signal delivery): return with `iretq`, restoring
    /// every register.
    Fresh = 2,
}

/// The user registers of a thread, and how it last left user mode.
/// The layout is fixed: the entry code stores into it by offset.
#[derive(Clone, Debug)]
#[repr(C, align(64))]
pub struct UserContext {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub rsp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rip: u64,
    pub rflags: u64,
    /// How the thread last entered the kernel.
    pub kind: TrapKind,
    /// Trap vector (for `TrapKind::Trap`).
    pub vector: u64,
    /// Error code pushed by the CPU, or 0.
    pub error_code: u64,
    /// CR2 at the trap (the faulting address of a page fault).
    pub cr2: u64,
    /// User FS base (TLS).
    pub fs_base: u64,
    /// FXSAVE area for x87/SSE state.
    pub fpu: FpuState,
    /// The thread's PKRU (protection-key rights), live in the register while the
    /// thread runs in user mode and saved here whenever it leaves it.
    pub pkru: u32,
}

/// The 512-byte FXSAVE image.
#[derive(Clone, Debug)]
#[repr(C, align(16))]
pub struct FpuState(pub [u8; 512]);

impl Default for FpuState {
    fn default() -> Self {
        let mut image = [0u8; 512];
        image[0..2].copy_from_slice(&0x037fu16.to_le_bytes()); // FCW: all exceptions masked
        image[24..28].copy_from_slice(&0x1f80u32.to_le_bytes()); // MXCSR default
        Self(image)
    }
}

/// The PKRU a program starts with and a signal handler runs with (Linux's
/// `init_pkru_value`): every key but 0 access-disabled.
pub const INIT_PKRU: u32 = 0x5555_5554;

static PKU_ENABLED: AtomicBool = AtomicBool::new(false);

/// Records that CR4.PKE is on (every CPU sets it): PKRU is then switched per thread.
pub fn set_pku_enabled() {
    PKU_ENABLED.store(true, Ordering::Relaxed);
}

/// Whether protection keys are on.
pub fn pku_enabled() -> bool {
    PKU_ENABLED.load(Ordering::Relaxed)
}

fn rdpkru() -> u32 {
    let pkru: u32;
    // SAFETY: RDPKRU (ECX = 0) only reads PKRU; CR4.PKE is set (checked by callers).
    unsafe {
        core::arch::asm!("rdpkru", in("ecx") 0u32, out("eax") pkru, out("edx") _,
            options(nomem, nostack, preserves_flags))
    };
    pkru
}

fn wrpkru(pkru: u32) {
    // SAFETY: WRPKRU (ECX = EDX = 0) changes only which user pages data accesses may
    // touch; CR4.PKE is set (checked by callers). The kernel's own mappings are
    // supervisor pages, which PKRU does not govern.
    unsafe {
        core::arch::asm!("wrpkru", in("eax") pkru, in("ecx") 0u32, in("edx") 0u32,
            options(nostack, preserves_flags))
    };
}

/// Makes `pkru` the live PKRU (when keys are on): the kernel's own accesses to user
/// memory on a thread's behalf obey that thread's rights, wherever the CPU last ran.
pub fn load_pkru(pkru: u32) {
    if pku_enabled() && rdpkru() != pkru {
        wrpkru(pkru);
    }
}

/// A system call's future that runs with its thread's PKRU live at every poll: after
/// a wait it may resume on a CPU another thread's rights were left on, and then copy
/// to or from user memory.
pub struct WithPkru<F: ?Sized> {
    pkru: u32,
    inner: core::pin::Pin<alloc::boxed::Box<F>>,
}

impl<F: core::future::Future + ?Sized> WithPkru<F> {
    /// Wraps `inner` for a thread whose PKRU is `pkru`.
    pub fn new(pkru: u32, inner: core::pin::Pin<alloc::boxed::Box<F>>) -> Self {
        WithPkru { pkru, inner }
    }
}

impl<F: core::future::Future + ?Sized> core::future::Future for WithPkru<F> {
    type Output = F::Output;

    fn poll(
        mut self: core::pin::Pin<&mut Self>,
        cx: &mut core::task::Context<'_>,
    ) -> core::task::Poll<F::Output> {
        load_pkru(self.pkru);
        self.inner.as_mut().poll(cx)
    }
}

/// RFLAGS bits user mode may control; IF is forced on.
const USER_RFLAGS_MASK: u64 = 0x0000_0000_0000_0cd5; // CF PF AF ZF SF DF OF (TF excluded)

impl UserContext {
    /// A context that starts at `rip` with stack `rsp`, all else zero.
    pub fn new(rip: u64, rsp: u64) -> Self {
        Self {
            rax: 0,
            rbx: 0,
            rcx: 0,
            rdx: 0,
            rsi: 0,
            rdi: 0,
            rbp: 0,
            rsp,
            r8: 0,
            r9: 0,
            r10: 0,
            r11: 0,
            r12: 0,
            r13: 0,
            r14: 0,
            r15: 0,
            rip,
            rflags: RFlags::INTERRUPT_FLAG.bits(),
            kind: TrapKind::Fresh,
            vector: 0,
            error_code: 0,
            cr2: 0,
            fs_base: 0,
            fpu: FpuState::default(),
            pkru: INIT_PKRU,
        }
    }

    /// The system call number and its six arguments (Linux order).
    pub fn syscall_args(&self) -> (u64, [u64; 6]) {
        (
            self.rax,
            [self.rdi, self.rsi, self.rdx, self.r10, self.r8, self.r9],
        )
    }
}

// Offsets the assembly relies on.
const _: () = {
    assert!(offset_of!(UserContext, rax) == 0);
    assert!(offset_of!(UserContext, rsp) == 56);
    assert!(offset_of!(UserContext, r15) == 120);
    assert!(offset_of!(UserContext, rip) == 128);
    assert!(offset_of!(UserContext, rflags) == 136);
    assert!(offset_of!(UserContext, kind) == 144);
    assert!(offset_of!(UserContext, vector) == 152);
    assert!(offset_of!(UserContext, error_code) == 160);
    assert!(offset_of!(UserContext, cr2) == 168);
};

global_asm!(
    r#"
    .section .text.usermode, "ax"
    .set CTX_RSP, 56
    .set CTX_RIP, 128
    .set CTX_RFLAGS, 136
    .set CTX_KIND, 144
    .set CTX_VECTOR, 152
    .set CTX_ERROR, 160
    .set CTX_CR2, 168
    .set GS_TRAP_STACK, 16
    .set GS_SCRATCH, 24
    .set GS_RESUME_RSP, 32
    .set GS_USER_CTX, 40
    .set GS_KERNEL_CR3, 48
    .set GS_USER_CR3, 56
    .set GS_SCRATCH2, 64

    /* Loads the user registers from the context at %rdi, except RCX, R11 (sysret takes
       them for RIP and RFLAGS), RDI (the context pointer) and RSP. */
    .macro load_user_regs
    movq 0(%rdi), %rax
    movq 8(%rdi), %rbx
    movq 24(%rdi), %rdx
    movq 32(%rdi), %rsi
    movq 48(%rdi), %rbp
    movq 64(%rdi), %r8
    movq 72(%rdi), %r9
    movq 80(%rdi), %r10
    movq 96(%rdi), %r12
    movq 104(%rdi), %r13
    movq 112(%rdi), %r14
    movq 120(%rdi), %r15
    .endm

    /* Entry from ring 3: kernel GS, the user RSP in GS_SCRATCH, the kernel tables under
       KPTI, and RSP pointing into the thread's context (GS_USER_CTX). */
    .macro enter_kernel_tables
    swapgs
    movq %rsp, %gs:GS_SCRATCH
    movq %gs:GS_USER_CR3, %rsp
    testq %rsp, %rsp
    jz 1f
    movq %gs:GS_KERNEL_CR3, %rsp
    movq %rsp, %cr3
1:  movq %gs:GS_USER_CTX, %rsp
    .endm

    /* The context is filled by pushing downwards from its RIP slot: R15..R8, then (after
       the RSP slot) RBP..RAX. */
    .macro push_user_high_regs
    pushq %r15
    pushq %r14
    pushq %r13
    pushq %r12
    pushq %r11
    pushq %r10
    pushq %r9
    pushq %r8
    .endm

    .macro push_user_low_regs
    pushq %rbp
    pushq %rdi
    pushq %rsi
    pushq %rdx
    pushq %rcx
    pushq %rbx
    pushq %rax
    .endm

    /* run_user(ctx: *mut UserContext): enter ring 3; returns when user mode traps back.
       Under KPTI (GS_USER_CR3 != 0) the last steps run on the user tables: only this code,
       the per-CPU block and the trap stack are mapped there, so the user RSP/RDI wait in
       per-CPU scratch slots and an iret frame is built on the trap stack. */
    .global run_user_asm
run_user_asm:
    pushq %rbx
    pushq %rbp
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, %gs:GS_RESUME_RSP
    movq %rdi, %gs:GS_USER_CTX
    movq 40(%rdi), %rax
    movq %rax, %gs:GS_SCRATCH2              /* user RDI */
    cmpq $0, CTX_KIND(%rdi)
    jne 1f
    /* Back from a system call: sysretq (RCX = RIP, R11 = RFLAGS). */
    movq CTX_RSP(%rdi), %rax
    movq %rax, %gs:GS_SCRATCH               /* user RSP */
    movq CTX_RIP(%rdi), %rcx
    movq CTX_RFLAGS(%rdi), %r11
    load_user_regs
    movq %gs:GS_USER_CR3, %rdi
    testq %rdi, %rdi
    jz 2f
    movq %rdi, %cr3
2:  movq %gs:GS_SCRATCH, %rsp
    movq %gs:GS_SCRATCH2, %rdi
    swapgs
    sysretq
1:  /* Anything else: iretq restores every register; the frame goes on the trap stack. */
    movq %gs:GS_TRAP_STACK, %rsp
    pushq ${user_ss}
    pushq CTX_RSP(%rdi)
    pushq CTX_RFLAGS(%rdi)
    pushq ${user_cs}
    pushq CTX_RIP(%rdi)
    load_user_regs
    movq 16(%rdi), %rcx
    movq 88(%rdi), %r11
    movq %gs:GS_USER_CR3, %rdi
    testq %rdi, %rdi
    jz 3f
    movq %rdi, %cr3
3:  movq %gs:GS_SCRATCH2, %rdi
    swapgs
    iretq

    /* LSTAR: user executed `syscall`. IF, DF, TF and AC are already clear (SFMASK). */
    .global syscall_entry
syscall_entry:
    enter_kernel_tables
    addq $(CTX_RFLAGS + 8), %rsp
    pushq %r11                   /* rflags */
    pushq %rcx                   /* rip */
    push_user_high_regs
    pushq %gs:GS_SCRATCH         /* rsp */
    push_user_low_regs
    movq $0, CTX_KIND(%rsp)
    jmp resume_kernel

    /* From isr_common when the trap came from ring 3, on the TSS stack: the stub pushed
       vector and error code above the CPU's iret frame. GS is still the user's. */
    .global user_trap_entry
user_trap_entry:
    enter_kernel_tables
    addq $CTX_RIP, %rsp
    push_user_high_regs
    pushq $0                     /* rsp, filled below */
    push_user_low_regs
    movq %gs:GS_SCRATCH, %rax
    movq 0(%rax), %rcx
    movq %rcx, CTX_VECTOR(%rsp)
    movq 8(%rax), %rcx
    movq %rcx, CTX_ERROR(%rsp)
    movq 16(%rax), %rcx
    movq %rcx, CTX_RIP(%rsp)
    movq 32(%rax), %rcx
    movq %rcx, CTX_RFLAGS(%rsp)
    movq 40(%rax), %rcx
    movq %rcx, CTX_RSP(%rsp)
    movq %cr2, %rcx
    movq %rcx, CTX_CR2(%rsp)
    movq $1, CTX_KIND(%rsp)
resume_kernel:
    movq %gs:GS_RESUME_RSP, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbp
    popq %rbx
    ret
    "#,
    user_cs = const gdt::USER_CODE.0 as u64,
    user_ss = const gdt::USER_DATA.0 as u64,
    options(att_syntax)
);

unsafe extern "C" {
    fn run_user_asm(ctx: *mut UserContext);
    fn syscall_entry();
}

/// IA32_TSC_AUX: what RDTSCP returns in ECX.
const IA32_TSC_AUX: u32 = 0xc000_0103;

/// The IA32_TSC_AUX value of a CPU, as Linux sets it for the vDSO's getcpu: the node
/// above bit 12, the CPU number below.
pub fn tsc_aux(cpu: u32, node: u32) -> u64 {
    u64::from(node) << 12 | u64::from(cpu & 0xfff)
}

/// Programs the `syscall` MSRs on the calling CPU, and IA32_TSC_AUX (the vDSO's getcpu)
/// where the CPU has RDTSCP.
pub fn init_cpu() {
    if super::cpu::features().rdtscp {
        let here = percpu::current();
        // SAFETY: CPUID reports RDTSCP, so IA32_TSC_AUX exists; it only feeds RDTSCP.
        unsafe {
            x86_64::registers::model_specific::Msr::new(IA32_TSC_AUX)
                .write(tsc_aux(here.cpu_id.0, here.node));
        }
    }
    // SAFETY: LSTAR points at `syscall_entry`; STAR holds the selectors of our GDT;
    // SFMASK clears IF, DF, TF and AC on entry; SCE enables the instruction.
    unsafe {
        LStar::write(x86_64::VirtAddr::new(syscall_entry as *const () as u64));
        Star::write(
            gdt::USER_CODE,
            gdt::USER_DATA,
            gdt::KERNEL_CODE,
            gdt::KERNEL_DATA,
        )
        .expect("GDT layout fits sysret");
        SFMask::write(
            RFlags::INTERRUPT_FLAG
                | RFlags::DIRECTION_FLAG
                | RFlags::TRAP_FLAG
                | RFlags::ALIGNMENT_CHECK,
        );
        Efer::update(|e| e.insert(EferFlags::SYSTEM_CALL_EXTENSIONS));
    }
}

fn fxsave(state: &mut FpuState) {
    // SAFETY: `state` is a 16-byte aligned 512-byte buffer; OSFXSR is set on every CPU.
    unsafe { core::arch::asm!("fxsave64 [{}]", in(reg) state.0.as_mut_ptr(), options(nostack)) };
}

fn fxrstor(state: &FpuState) {
    // SAFETY: as for `fxsave`; the image came from `fxsave` or the valid default.
    unsafe {
        core::arch::asm!("fxrstor64 [{}]", in(reg) state.0.as_ptr(), options(nostack, readonly))
    };
}

/// Runs `ctx` in user mode until it traps back. Interrupts are disabled for the switch and
/// enabled again on return; FPU state is restored lazily (only when another context used
/// this CPU's FPU since).
pub fn run_user(ctx: &mut UserContext) {
    let cpu = percpu::current();
    x86_64::instructions::interrupts::disable();
    let me = ctx as *mut UserContext as u64;
    if cpu.fpu_owner.load(core::sync::atomic::Ordering::Relaxed) != me {
        fxrstor(&ctx.fpu);
        cpu.fpu_owner
            .store(me, core::sync::atomic::Ordering::Relaxed);
    }
    if cpu
        .loaded_fs_base
        .load(core::sync::atomic::Ordering::Relaxed)
        != ctx.fs_base
    {
        FsBase::write(x86_64::VirtAddr::new_truncate(ctx.fs_base));
        cpu.loaded_fs_base
            .store(ctx.fs_base, core::sync::atomic::Ordering::Relaxed);
    }
    let pku = pku_enabled();
    if pku && rdpkru() != ctx.pkru {
        wrpkru(ctx.pkru);
    }
    // sysretq only straight back from a system call with RCX/R11 intact and a canonical
    // user RIP; everything else (new threads, exec, signals, traps) goes through iretq.
    let fast = ctx.kind == TrapKind::Syscall && ctx.rip < USER_ADDRESS_END && ctx.rcx == ctx.rip;
    ctx.rflags = (ctx.rflags & USER_RFLAGS_MASK) | RFlags::INTERRUPT_FLAG.bits();
    if fast {
        ctx.r11 = ctx.rflags;
    } else {
        ctx.kind = TrapKind::Fresh;
    }
    // SAFETY: `ctx` holds user-mode registers (RIP/RSP are user addresses or will fault in
    // user mode); the entry code returns here through `resume_kernel` on this CPU's stack.
    unsafe { run_user_asm(ctx) };
    if pku {
        // User mode may have changed it with WRPKRU.
        ctx.pkru = rdpkru();
    }
    // Only this CPU writes it: a load and a store, no locked instruction.
    let returns = cpu.user_returns.load(core::sync::atomic::Ordering::Relaxed);
    cpu.user_returns.store(
        returns.wrapping_add(1),
        core::sync::atomic::Ordering::Relaxed,
    );
    cpu.user_context
        .store(0, core::sync::atomic::Ordering::Relaxed);
    x86_64::instructions::interrupts::enable();
}

/// Saves this thread's FPU state into its context if it is live on this CPU, so the thread
/// can resume elsewhere (called before a thread's task may wait).
pub fn save_fpu(ctx: &mut UserContext) {
    let cpu = percpu::current();
    let me = ctx as *mut UserContext as u64;
    x86_64::instructions::interrupts::without_interrupts(|| {
        if cpu.fpu_owner.load(core::sync::atomic::Ordering::Relaxed) == me {
            fxsave(&mut ctx.fpu);
            cpu.fpu_owner
                .store(0, core::sync::atomic::Ordering::Relaxed);
        }
    });
}

/// A copy of `ctx` whose FPU image holds the registers' current contents where `ctx`'s
/// thread still has them live on this CPU (its image in `ctx` is then stale): what a
/// fork's child starts with.
pub fn clone_with_live_fpu(ctx: &UserContext) -> alloc::boxed::Box<UserContext> {
    let mut copy = alloc::boxed::Box::new(ctx.clone());
    let cpu = percpu::current();
    let owner = ctx as *const UserContext as u64;
    x86_64::instructions::interrupts::without_interrupts(|| {
        if cpu.fpu_owner.load(core::sync::atomic::Ordering::Relaxed) == owner {
            // The registers stay loaded and owned by `ctx`: only copied out.
            fxsave(&mut copy.fpu);
        }
    });
    copy
}

/// First address above user space (the lower canonical half, minus a guard page).
pub const USER_ADDRESS_END: u64 = 0x0000_7fff_ffff_f000;
