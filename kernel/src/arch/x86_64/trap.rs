//! Trap entry: the common assembly path for all 256 vectors, the saved register frame,
//! and dispatch to exception reports and interrupt handlers.

use super::percpu;
use conquer_once::spin::OnceCell;
use core::{arch::global_asm, fmt};
use drivers::apic::vectors;
use x86_64::registers::control::Cr2;

global_asm!(
    include_str!(concat!(env!("OUT_DIR"), "/vectors.S")),
    options(att_syntax)
);

global_asm!(
    r#"
    .section .text.vectors, "ax"
    .global isr_common
isr_common:
    testb $3, 24(%rsp)          /* came from user mode? (CS of the iret frame) */
    jnz user_trap_entry         /* usermode.rs: save into the thread's context */
    cmpb $0, SMAP_ENABLED(%rip) /* an interrupt inside a user copy must not run with AC set */
    je 3f
    clac
3:  pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, %rdi
    cld
    call trap_dispatch
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $16, %rsp              /* vector and error code */
    iretq
    "#,
    options(att_syntax)
);

/// The registers saved on every trap, lowest address first.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    /// Vector number pushed by the entry stub.
    pub vector: u64,
    /// CPU error code, or 0.
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

impl TrapFrame {
    /// The trap interrupted user mode.
    pub fn is_from_user(&self) -> bool {
        self.cs & 3 == 3
    }
}

/// Names of the architectural exceptions.
pub fn exception_name(vector: u64) -> &'static str {
    match vector {
        0 => "#DE divide error",
        1 => "#DB debug",
        2 => "NMI",
        3 => "#BP breakpoint",
        4 => "#OF overflow",
        5 => "#BR bound range",
        6 => "#UD invalid opcode",
        7 => "#NM device not available",
        8 => "#DF double fault",
        10 => "#TS invalid TSS",
        11 => "#NP segment not present",
        12 => "#SS stack-segment fault",
        13 => "#GP general protection",
        14 => "#PF page fault",
        16 => "#MF x87 floating point",
        17 => "#AC alignment check",
        18 => "#MC machine check",
        19 => "#XM SIMD floating point",
        20 => "#VE virtualization",
        21 => "#CP control protection",
        _ => "reserved exception",
    }
}

/// A readable report of an exception, as printed on the console.
pub struct ExceptionReport<'a> {
    /// The saved frame.
    pub frame: &'a TrapFrame,
    /// CR2 at the time of the trap.
    pub cr2: u64,
}

impl fmt::Display for ExceptionReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.frame;
        writeln!(
            f,
            "EXCEPTION {} (vector {}) on cpu {} in {} mode",
            exception_name(t.vector),
            t.vector,
            percpu::current_cpu().0,
            if t.is_from_user() { "user" } else { "kernel" }
        )?;
        write!(f, "  error code {:#x}", t.error_code)?;
        if t.vector == 14 {
            let e = t.error_code;
            write!(
                f,
                " ({} {} {}{})",
                if e & 1 != 0 {
                    "protection violation"
                } else {
                    "page not present"
                },
                if e & 2 != 0 {
                    "on write"
                } else if e & 16 != 0 {
                    "on instruction fetch"
                } else {
                    "on read"
                },
                if e & 4 != 0 {
                    "from user"
                } else {
                    "from kernel"
                },
                if e & 8 != 0 { ", reserved bit set" } else { "" }
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "  RIP {:#018x}  CS {:#x}  RFLAGS {:#x}",
            t.rip, t.cs, t.rflags
        )?;
        writeln!(
            f,
            "  RSP {:#018x}  SS {:#x}  CR2 {:#018x}",
            t.rsp, t.ss, self.cr2
        )?;
        writeln!(
            f,
            "  RAX {:#018x}  RBX {:#018x}  RCX {:#018x}  RDX {:#018x}",
            t.rax, t.rbx, t.rcx, t.rdx
        )?;
        writeln!(
            f,
            "  RSI {:#018x}  RDI {:#018x}  RBP {:#018x}  R8  {:#018x}",
            t.rsi, t.rdi, t.rbp, t.r8
        )?;
        writeln!(
            f,
            "  R9  {:#018x}  R10 {:#018x}  R11 {:#018x}  R12 {:#018x}",
            t.r9, t.r10, t.r11, t.r12
        )?;
        write!(
            f,
            "  R13 {:#018x}  R14 {:#018x}  R15 {:#018x}",
            t.r13, t.r14, t.r15
        )
    }
}

/// What the layers above do with traps taken in kernel mode. `arch` knows nothing of
/// devices or address spaces: `main` installs these before it enables interrupts.
pub struct KernelTrapHandlers {
    /// A device, timer or IPI vector (32 and up, not the spurious one).
    pub interrupt: fn(u8),
    /// A page fault of the user-copy routine at user address `addr` (`write` or read):
    /// resolve it and return true, or return false to fail the copy (EFAULT).
    pub user_copy_fault: fn(addr: u64, write: bool) -> bool,
}

static HANDLERS: OnceCell<KernelTrapHandlers> = OnceCell::uninit();

/// Installs the kernel-mode trap handlers (once; later calls are ignored).
pub fn install_handlers(handlers: KernelTrapHandlers) {
    HANDLERS.get_or_init(|| handlers);
}

/// The page-fault error-code bit of a protection-key violation.
pub const PF_PK: u64 = 1 << 5;

/// Called by `isr_common` for traps taken in kernel mode, with interrupts disabled.
#[unsafe(no_mangle)]
extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    match frame.vector {
        14 => handle_kernel_page_fault(frame),
        0..=31 => fatal(frame),
        v if v == u64::from(vectors::SPURIOUS) => {}
        v => match HANDLERS.get() {
            Some(handlers) => (handlers.interrupt)(v as u8),
            None => panic!("interrupt vector {v:#x} before the handlers were installed"),
        },
    }
}

/// A kernel-mode page fault is legal only inside the user-copy routine, on a user address:
/// it is resolved if that can be done at once, else the copy stops and reports the fault.
fn handle_kernel_page_fault(frame: &mut TrapFrame) {
    let cr2 = Cr2::read_raw();
    if super::uaccess::is_copy_instruction(frame.rip) && cr2 < super::usermode::USER_ADDRESS_END {
        // PKRU refuses the access: no fault resolves it, the copy fails (EFAULT).
        if frame.error_code & PF_PK != 0 {
            frame.rip = super::uaccess::fixup_address(frame.rip);
            return;
        }
        let write = frame.error_code & 2 != 0;
        // The copy ran with interrupts on: resolve with them on again, since resolving may
        // need a TLB shootdown that other CPUs answer only with their interrupts on.
        let interrupts_were_on = frame.rflags & (1 << 9) != 0;
        if interrupts_were_on {
            x86_64::instructions::interrupts::enable();
        }
        let resolved = HANDLERS
            .get()
            .is_some_and(|handlers| (handlers.user_copy_fault)(cr2, write));
        x86_64::instructions::interrupts::disable();
        if !resolved {
            frame.rip = super::uaccess::fixup_address(frame.rip);
        }
        return;
    }
    fatal(frame)
}

fn fatal(frame: &TrapFrame) -> ! {
    let report = ExceptionReport {
        frame,
        cr2: Cr2::read_raw(),
    };
    panic!(
        "fatal {} in kernel mode\n{report}",
        exception_name(frame.vector)
    )
}
