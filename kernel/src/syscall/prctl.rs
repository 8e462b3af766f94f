//! `prctl(2)`: the process switches real programs use. Unknown options are EINVAL, as
//! on Linux.

use crate::{
    arch::uaccess::{read_user, write_user},
    proc::{signal::NSIG, thread::Thread},
};
use alloc::string::String;
use core::sync::atomic::Ordering;
use errno::{Errno, SysResult};

const PR_SET_PDEATHSIG: u64 = 1;
const PR_GET_PDEATHSIG: u64 = 2;
const PR_GET_DUMPABLE: u64 = 3;
const PR_SET_DUMPABLE: u64 = 4;
const PR_SET_NAME: u64 = 15;
const PR_GET_NAME: u64 = 16;
const PR_SET_CHILD_SUBREAPER: u64 = 36;
const PR_GET_CHILD_SUBREAPER: u64 = 37;
const PR_SET_NO_NEW_PRIVS: u64 = 38;
const PR_GET_NO_NEW_PRIVS: u64 = 39;
const PR_SET_THP_DISABLE: u64 = 41;
const PR_GET_THP_DISABLE: u64 = 42;
/// `PR_SET_VMA` ("SVMA") and its one sub-option.
const PR_SET_VMA: u64 = 0x5356_4d41;
const PR_SET_VMA_ANON_NAME: u64 = 0;
/// TASK_COMM_LEN: a name's bytes with its NUL.
const COMM_LEN: usize = 16;

/// Linux's rule for options whose unused arguments must be zero.
fn unused_zero(args: &[u64]) -> SysResult<()> {
    if args.iter().any(|&a| a != 0) {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// `prctl(option, arg2, arg3, arg4, arg5)`.
pub fn prctl(thread: &Thread, option: u64, a: [u64; 4]) -> SysResult {
    let process = &thread.process;
    let controls = &process.controls;
    match option {
        PR_SET_PDEATHSIG => {
            let sig = u8::try_from(a[0])
                .ok()
                .filter(|&s| s <= NSIG)
                .ok_or(Errno::EINVAL)?;
            controls.pdeath_signal.store(sig, Ordering::Relaxed);
            Ok(0)
        }
        PR_GET_PDEATHSIG => {
            let sig = i32::from(controls.pdeath_signal.load(Ordering::Relaxed));
            write_user(a[0], &sig)?;
            Ok(0)
        }
        PR_GET_DUMPABLE => Ok(u64::from(controls.dumpable.load(Ordering::Relaxed))),
        PR_SET_DUMPABLE => {
            let dumpable = match a[0] {
                0 => false,
                1 => true,
                _ => return Err(Errno::EINVAL),
            };
            controls.dumpable.store(dumpable, Ordering::Relaxed);
            Ok(0)
        }
        PR_SET_NAME => {
            // The name is the first 15 bytes, stopping at a NUL; the read may end at
            // the first unreadable byte only if the NUL came before it.
            let mut name = String::new();
            for i in 0..COMM_LEN as u64 - 1 {
                let byte: u8 = read_user(a[0].checked_add(i).ok_or(Errno::EFAULT)?)?;
                if byte == 0 {
                    break;
                }
                name.push(char::from(byte));
            }
            *process.name.lock() = name;
            Ok(0)
        }
        PR_GET_NAME => {
            let mut buf = [0u8; COMM_LEN];
            let name = process.name.lock();
            let bytes = name.as_bytes();
            let n = bytes.len().min(COMM_LEN - 1);
            buf[..n].copy_from_slice(&bytes[..n]);
            drop(name);
            crate::arch::uaccess::copy_to_user(a[0], &buf)?;
            Ok(0)
        }
        PR_SET_CHILD_SUBREAPER => {
            controls.child_subreaper.store(a[0] != 0, Ordering::Relaxed);
            Ok(0)
        }
        PR_GET_CHILD_SUBREAPER => {
            let on = i32::from(controls.child_subreaper.load(Ordering::Relaxed));
            write_user(a[0], &on)?;
            Ok(0)
        }
        PR_SET_NO_NEW_PRIVS => {
            if a[0] != 1 {
                return Err(Errno::EINVAL);
            }
            unused_zero(&a[1..])?;
            controls.no_new_privs.store(true, Ordering::Relaxed);
            Ok(0)
        }
        PR_GET_NO_NEW_PRIVS => {
            unused_zero(&a)?;
            Ok(u64::from(controls.no_new_privs.load(Ordering::Relaxed)))
        }
        PR_SET_THP_DISABLE => {
            unused_zero(&a[1..])?;
            process.address_space().mm().set_thp_disabled(a[0] != 0);
            Ok(0)
        }
        PR_GET_THP_DISABLE => {
            unused_zero(&a)?;
            Ok(u64::from(process.address_space().mm().thp_disabled()))
        }
        PR_SET_VMA => {
            if a[0] != PR_SET_VMA_ANON_NAME {
                return Err(Errno::EINVAL);
            }
            let name = if a[3] == 0 {
                None
            } else {
                let max = mm::aspace::anon_name::ANON_NAME_MAX_LEN;
                let raw = crate::arch::uaccess::read_user_cstr(a[3], max).map_err(|e| match e {
                    Errno::ENAMETOOLONG => Errno::EINVAL,
                    e => e,
                })?;
                Some(String::from_utf8(raw).map_err(|_| Errno::EINVAL)?)
            };
            let space = process.address_space();
            space.mm().set_anon_name(a[1], a[2], name.as_deref())?;
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}

/// `personality(persona)`: returns the process's personality and, unless `persona` is
/// `0xffffffff` (a query), sets it to `persona` (read as Linux's `unsigned int`; any
/// value is taken, as on Linux). It is inherited and kept across exec; its
/// `ADDR_NO_RANDOMIZE` bit fixes the layout of the next exec (see `proc::exec`).
pub fn personality(thread: &Thread, persona: u64) -> SysResult {
    let persona = persona as u32;
    let slot = &thread.process.controls.personality;
    let old = if persona == u32::MAX {
        slot.load(Ordering::Relaxed)
    } else {
        slot.swap(persona, Ordering::Relaxed)
    };
    Ok(u64::from(old))
}
