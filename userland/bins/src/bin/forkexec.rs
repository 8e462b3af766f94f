//! `forkexec [--hello PATH]`: process creation and reaping.
//!
//! Checks: a forked child execve's `hello 7 from-forkexec` and the parent's wait4
//! returns that pid with exit status 7; a child that exits without exec reports its
//! status and sees the parent as getppid; a child's write to a copied heap page does
//! not change the parent's (copy-on-write isolation); execve of a missing path
//! fails with ENOENT; wait4 on a non-child and wait4(-1) with no children give
//! ECHILD. `hello` is looked up next to argv[0] (so /bin/hello in the guest), or
//! given with --hello.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use peios_bins::Checks;
use peios_rt::prelude::*;
use peios_rt::process::{execve, fork, wait_pid, Fork, WaitStatus};
use peios_rt::sys::process::{exit_group, getpid, getppid, wait4};

peios_rt::main!(main);

fn hello_path(args: &Args) -> String {
    if let Some(p) = args.opt("--hello") {
        return String::from(p);
    }
    match args.get(0).and_then(|a0| a0.rfind('/').map(|i| &a0[..i])) {
        Some(dir) => format!("{}/hello", dir),
        None => String::from("/bin/hello"),
    }
}

fn main(args: &Args) -> i32 {
    let mut checks = Checks::new("forkexec");
    let hello = hello_path(args);
    let env: Vec<&str> = args.env_iter().collect();
    let me = getpid();

    // 1. fork + execve + wait4 with a chosen exit status.
    match fork() {
        Err(e) => {
            checks.check("fork", false, format_args!("fork failed: {}", e));
            return checks.finish();
        }
        Ok(Fork::Child) => {
            let e = execve(&hello, &[hello.as_str(), "7", "from-forkexec"], &env);
            eprintln!("forkexec: child: execve {}: {}", hello, e);
            exit_group(127)
        }
        Ok(Fork::Parent(pid)) => match wait4(pid, 0) {
            Ok((got, raw)) => {
                let st = WaitStatus::from_raw(raw);
                checks.check(
                    "wait4-pid",
                    got == pid,
                    format_args!("wait4 returned {} for child {}", got, pid),
                );
                checks.check(
                    "exec-status",
                    st == WaitStatus::Exited(7),
                    format_args!("{} {} (raw {:#x})", hello, st, raw),
                );
            }
            Err(e) => {
                checks.check(
                    "wait4-pid",
                    false,
                    format_args!("wait4({}) failed: {}", pid, e),
                );
            }
        },
    }

    // 1b. execve from a process with a second thread (blocked in a sleep, and another
    //     spinning): the other threads go away and the program runs (Linux de-threading);
    //     an execve that fails leaves them running.
    match fork() {
        Err(e) => {
            checks.check(
                "exec-multithreaded",
                false,
                format_args!("fork failed: {}", e),
            );
        }
        Ok(Fork::Child) => {
            let sleeper = peios_rt::thread::spawn(|| loop {
                peios_rt::time::sleep_ms(1000);
            });
            let spinner = peios_rt::thread::spawn(|| loop {
                core::hint::spin_loop();
            });
            if sleeper.is_err() || spinner.is_err() {
                exit_group(120);
            }
            let bad = execve("/no/such/program", &["x"], &env);
            if bad != peios_rt::Errno::ENOENT {
                exit_group(121);
            }
            let e = execve(
                &hello,
                &[hello.as_str(), "9", "from-a-threaded-process"],
                &env,
            );
            eprintln!("forkexec: child: threaded execve {}: {}", hello, e);
            exit_group(122)
        }
        Ok(Fork::Parent(pid)) => {
            let st = wait_pid(pid);
            checks.check(
                "exec-multithreaded",
                st == Ok(WaitStatus::Exited(9)),
                format_args!(
                    "{:?} (9 = hello ran; 121 = a failed execve misbehaved; 122 = execve failed)",
                    st
                ),
            );
        }
    }

    // 2. fork without exec: exit status and getppid.
    match fork() {
        Err(e) => {
            checks.check("fork-exit", false, format_args!("fork failed: {}", e));
        }
        Ok(Fork::Child) => exit_group(if getppid() == me { 42 } else { 43 }),
        Ok(Fork::Parent(pid)) => {
            let st = wait_pid(pid);
            checks.check(
                "fork-exit",
                st == Ok(WaitStatus::Exited(42)),
                format_args!(
                    "child {:?} (42 = exited and getppid matched, 43 = getppid wrong)",
                    st.map(|s| s.code())
                ),
            );
        }
    }

    // 3. Copy-on-write isolation of a heap page.
    let mut page: Vec<u8> = vec![0x5a; 4096];
    match fork() {
        Err(e) => {
            checks.check("cow", false, format_args!("fork failed: {}", e));
        }
        Ok(Fork::Child) => {
            let before_ok = page.iter().all(|&b| b == 0x5a);
            page.iter_mut().for_each(|b| *b = 0xa5);
            exit_group(if before_ok { 0 } else { 1 })
        }
        Ok(Fork::Parent(pid)) => {
            let st = wait_pid(pid);
            let intact = page.iter().all(|&b| b == 0x5a);
            checks.check(
                "cow",
                intact && st == Ok(WaitStatus::Exited(0)),
                format_args!(
                    "parent page intact: {}, child saw parent's data: {:?}",
                    intact,
                    st.map(|s| s.code() == 0)
                ),
            );
            page[0] = 1;
        }
    }

    // 4. execve of a missing file fails with ENOENT (in a child, in case it doesn't).
    match fork() {
        Err(e) => {
            checks.check("exec-enoent", false, format_args!("fork failed: {}", e));
        }
        Ok(Fork::Child) => {
            let e = execve("/nonexistent/peios-no-such-program", &["x"], &env);
            exit_group(if e == Errno::ENOENT {
                0
            } else {
                e.raw().clamp(1, 120)
            })
        }
        Ok(Fork::Parent(pid)) => {
            let st = wait_pid(pid);
            checks.check(
                "exec-enoent",
                st == Ok(WaitStatus::Exited(0)),
                format_args!(
                    "child {:?} (0 = got ENOENT, else the errno it got)",
                    st.map(|s| s.code())
                ),
            );
        }
    }

    // 5. ECHILD: no children left, and a pid that is not our child.
    checks.expect_errno("wait4-any-echild", wait4(-1, 0), Errno::ECHILD);
    let stranger = if me == 1 { 2 } else { 1 };
    checks.expect_errno("wait4-nonchild-echild", wait4(stranger, 0), Errno::ECHILD);
    checks.finish()
}
