//! What the executor needs from the machine, and nothing more.

use crate::CpuId;

/// What the executor needs from the machine.
///
/// The kernel implements it with GS-base per-CPU data, IPIs and `sti; hlt`;
/// host tests implement it with std threads standing in for CPUs
/// (`sched::host::HostPlatform`).
pub trait Platform: Send + Sync + 'static {
    /// The CPU the caller runs on.
    ///
    /// A context that is not one of the scheduler's CPUs (only host tests have
    /// such threads) returns any id `>= cpu_count`; the scheduler then treats
    /// the caller as remote to every CPU.
    fn current_cpu(&self) -> CpuId;

    /// Make `cpu` leave [`Platform::idle`] soon (kernel: send the wake IPI).
    ///
    /// Called only for a CPU that announced it is idle, at most once per
    /// announcement, and never for the calling CPU itself. May be called from
    /// any context that wakes a task, interrupt handlers included, so it must
    /// not block or allocate. A kick that arrives after the CPU already left
    /// idle must be harmless (it may make the next `idle` return at once).
    fn kick(&self, cpu: CpuId);

    /// Monotonic nanoseconds since boot.
    fn now_ns(&self) -> u64;

    /// Park the current CPU until a kick arrives or `deadline_ns` passes
    /// (`None`: no deadline).
    ///
    /// The kernel does `cli; if !still_idle() { sti; return } arm_timer(deadline); sti; hlt`:
    /// `still_idle` re-checks the queues with wake sources masked, so a kick
    /// sent after the check is delivered by the `hlt` and none is lost.
    ///
    /// Returning early (spuriously) is always allowed. Returning after any
    /// interrupt handled while parked is required: a wake issued by an
    /// interrupt handler on this very CPU does not kick (no self-IPI), it only
    /// makes `still_idle` false.
    fn idle(&self, deadline_ns: Option<u64>, still_idle: &dyn Fn() -> bool);
}
