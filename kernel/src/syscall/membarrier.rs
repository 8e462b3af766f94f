//! `membarrier(cmd, flags, cpu_id)`: a memory barrier on every CPU running the caller's
//! threads (the private commands) or any user thread (the global ones). The barrier is
//! a TLB-shootdown interrupt with an empty range, acknowledged by each target: taking
//! an interrupt is serialising on x86 (a full barrier, and a core-serialising one, so
//! the SYNC_CORE commands get the same). CPUs not running a thread of the address space
//! need nothing: entering user mode later is itself a barrier.

use crate::{arch::tlb, proc::thread::Thread};
use core::sync::atomic::Ordering;
use errno::{Errno, SysResult};

const QUERY: u32 = 0;
const GLOBAL: u32 = 1;
const GLOBAL_EXPEDITED: u32 = 1 << 1;
const REGISTER_GLOBAL_EXPEDITED: u32 = 1 << 2;
const PRIVATE_EXPEDITED: u32 = 1 << 3;
const REGISTER_PRIVATE_EXPEDITED: u32 = 1 << 4;
const PRIVATE_EXPEDITED_SYNC_CORE: u32 = 1 << 5;
const REGISTER_PRIVATE_EXPEDITED_SYNC_CORE: u32 = 1 << 6;
/// The REGISTER commands the process issued, as a mask.
const GET_REGISTRATIONS: u32 = 1 << 9;
/// Every command answered here (the rseq ones are not: rseq is not implemented).
const SUPPORTED: u32 = GLOBAL
    | GLOBAL_EXPEDITED
    | REGISTER_GLOBAL_EXPEDITED
    | PRIVATE_EXPEDITED
    | REGISTER_PRIVATE_EXPEDITED
    | PRIVATE_EXPEDITED_SYNC_CORE
    | REGISTER_PRIVATE_EXPEDITED_SYNC_CORE
    | GET_REGISTRATIONS;

/// A barrier on every CPU running a thread of `process`'s address space.
fn barrier_for(process: &crate::proc::Process) {
    let space = process.address_space();
    tlb::flush_address_space(space.tlb_state(), 0, 0);
}

/// `membarrier`: `flags` must be 0 (`MEMBARRIER_CMD_FLAG_CPU` is for the rseq
/// commands). The expedited private commands need the process to have registered for
/// them (EPERM otherwise), as on Linux; registration is kept by fork and lasts until
/// exec.
pub fn membarrier(thread: &Thread, cmd: u64, flags: u64, _cpu_id: u64) -> SysResult {
    let cmd = cmd as u32;
    if flags as u32 != 0 {
        return Err(Errno::EINVAL);
    }
    let process = &thread.process;
    let registered = &process.membarrier_registered;
    match cmd {
        QUERY => Ok(u64::from(SUPPORTED)),
        GET_REGISTRATIONS => Ok(u64::from(registered.load(Ordering::SeqCst))),
        GLOBAL | GLOBAL_EXPEDITED => {
            // Every process: each barrier reaches the CPUs running its threads.
            for p in crate::proc::all() {
                if !p.zombie.load(Ordering::SeqCst) {
                    barrier_for(&p);
                }
            }
            Ok(0)
        }
        REGISTER_GLOBAL_EXPEDITED
        | REGISTER_PRIVATE_EXPEDITED
        | REGISTER_PRIVATE_EXPEDITED_SYNC_CORE => {
            registered.fetch_or(cmd, Ordering::SeqCst);
            Ok(0)
        }
        PRIVATE_EXPEDITED | PRIVATE_EXPEDITED_SYNC_CORE => {
            let needed = cmd << 1; // the matching REGISTER command's bit
            if registered.load(Ordering::SeqCst) & needed == 0 {
                return Err(Errno::EPERM);
            }
            barrier_for(process);
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}
