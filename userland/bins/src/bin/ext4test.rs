//! `ext4test`: the ext4 disk `tools/mkext4.sh` makes, mounted read-only at `/mnt`
//! (`--disk IMAGE`; `--dir D` for another mount point).
//!
//! - `big.bin` (16 MiB of a known pattern) read back by `read` and `pread`, every word
//!   checked; `sparse.bin` (holes around one block of data); the symbolic link
//!   `link -> big.bin`; the listing of `dir/`; `stat`/`fstat`/`lstat` sizes, modes and
//!   inode numbers.
//! - `big.bin` mapped shared (read) and private (a write stays in this mapping: a
//!   fresh read of the file still sees the disk's bytes).
//! - A program on the disk (`bin/ext4test`, this one) executed: `--child` exits 42.
//! - The raw disk (`--dev`, default `vda`) reads back the superblock's magic; a
//!   restricted process cannot open it (EACCES).
//! - Writes are refused: `O_WRONLY` and `O_CREAT` are EROFS.
//! - `--root` (the image is the root, `--dir /`): `/proc/mounts` shows `/` as a
//!   read-only ext4, `/proc` and a writable `/tmp` are mounted in it.
//!
//! Runs on Linux too (the anchor's `--disk`).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use peios_bins::files::open;
use peios_bins::Checks;
use peios_rt::prelude::*;
use peios_rt::process::{fork, wait_pid, Fork, WaitStatus};
use peios_rt::sys::fs::{close, read, O_RDONLY, O_WRONLY};
use peios_rt::sys::mm::{mmap, munmap, MapFlags, Prot};
use peios_rt::syscall::{syscall2, syscall3, syscall4};

peios_rt::main!(main);

const BIG_BYTES: usize = 16 << 20;
const SPARSE_BYTES: u64 = 4 << 20;
const SPARSE_DATA_AT: usize = 1 << 20;
const SPARSE_DATA: &[u8] = b"SPARSE-DATA";
const O_CREAT: u32 = 0o100;
const AT_FDCWD: isize = -100;
const AT_SYMLINK_NOFOLLOW: usize = 0x100;
const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

const NR_PREAD64: usize = 17;
const NR_FSTAT: usize = 5;
const NR_GETDENTS64: usize = 217;
const NR_READLINKAT: usize = 267;
const NR_NEWFSTATAT: usize = 262;

/// The word at byte `offset` (a multiple of 8) of `big.bin`, as `mkext4.sh` writes it.
fn big_word(offset: u64) -> u64 {
    offset.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5eed
}

/// The first offset in `data` (which starts at file offset `at`) that differs from
/// the pattern.
fn first_bad(at: u64, data: &[u8]) -> Option<u64> {
    data.chunks_exact(8).enumerate().find_map(|(i, w)| {
        let off = at + 8 * i as u64;
        (u64::from_le_bytes(w.try_into().unwrap()) != big_word(off)).then_some(off)
    })
}

fn cpath(path: &str) -> Vec<u8> {
    let mut p = Vec::from(path.as_bytes());
    p.push(0);
    p
}

/// `struct stat` as the kernel writes it: `(ino, mode, size)`.
fn stat_of(path: &str, follow: bool) -> Result<(u64, u32, u64), Errno> {
    let p = cpath(path);
    let mut st = [0u64; 18];
    let flags = if follow { 0 } else { AT_SYMLINK_NOFOLLOW };
    // SAFETY: `p` is NUL-terminated, `st` is 144 writable bytes.
    let r = unsafe {
        syscall4(
            NR_NEWFSTATAT,
            AT_FDCWD as usize,
            p.as_ptr() as usize,
            st.as_mut_ptr() as usize,
            flags,
        )
    };
    Errno::result(r)?;
    Ok((st[1], st[3] as u32, st[6]))
}

fn fstat_of(fd: i32) -> Result<(u64, u32, u64), Errno> {
    let mut st = [0u64; 18];
    // SAFETY: `st` is 144 writable bytes.
    let r = unsafe { syscall2(NR_FSTAT, fd as usize, st.as_mut_ptr() as usize) };
    Errno::result(r)?;
    Ok((st[1], st[3] as u32, st[6]))
}

fn pread(fd: i32, buf: &mut [u8], offset: u64) -> Result<usize, Errno> {
    // SAFETY: `buf` is writable for its length.
    let r = unsafe {
        peios_rt::syscall::syscall4(
            NR_PREAD64,
            fd as usize,
            buf.as_mut_ptr() as usize,
            buf.len(),
            offset as usize,
        )
    };
    Errno::result(r)
}

fn read_all(path: &str) -> Result<Vec<u8>, Errno> {
    let fd = open(path, O_RDONLY)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let r = loop {
        match read(fd, &mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => break Err(e),
        }
    };
    let _ = close(fd);
    r.map(|()| out)
}

fn readlink(path: &str) -> Result<String, Errno> {
    let p = cpath(path);
    let mut buf = [0u8; 256];
    // SAFETY: `p` is NUL-terminated; `buf` is writable.
    let r = unsafe {
        peios_rt::syscall::syscall4(
            NR_READLINKAT,
            AT_FDCWD as usize,
            p.as_ptr() as usize,
            buf.as_mut_ptr() as usize,
            buf.len(),
        )
    };
    let n = Errno::result(r)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// The names `getdents64` lists in `path`, sorted.
fn list(path: &str) -> Result<Vec<String>, Errno> {
    let fd = open(path, O_RDONLY | 0o200000)?;
    let mut names = Vec::new();
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: `buf` is writable for its length.
        let r = unsafe {
            syscall3(
                NR_GETDENTS64,
                fd as usize,
                buf.as_mut_ptr() as usize,
                buf.len(),
            )
        };
        let n = match Errno::result(r) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                let _ = close(fd);
                return Err(e);
            }
        };
        let mut at = 0;
        while at < n {
            let reclen = u16::from_le_bytes([buf[at + 16], buf[at + 17]]) as usize;
            let name = &buf[at + 19..at + reclen];
            let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
            names.push(String::from_utf8_lossy(&name[..end]).into_owned());
            at += reclen;
        }
    }
    let _ = close(fd);
    names.sort();
    Ok(names)
}

fn main(args: &peios_rt::Args) -> i32 {
    if args.iter().any(|a| a == "--child") {
        return 42;
    }
    let dir = args.opt("--dir").unwrap_or("/mnt").trim_end_matches('/');
    let at = |name: &str| alloc::format!("{dir}/{name}");
    let mut c = Checks::new("ext4test");

    // The big file, sequentially and at scattered offsets.
    match read_all(&at("big.bin")) {
        Ok(data) => {
            let bad = first_bad(0, &data);
            c.check(
                "big_read",
                data.len() == BIG_BYTES && bad.is_none(),
                format_args!("{} bytes, first bad word {bad:?}", data.len()),
            );
        }
        Err(e) => {
            c.check("big_read", false, format_args!("{e}"));
        }
    }
    if let Ok(fd) = open(&at("big.bin"), O_RDONLY) {
        let mut ok = true;
        let mut buf = [0u8; 8 * 100];
        let mut seed = 7u64;
        for _ in 0..200 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let off = (seed >> 20) % (BIG_BYTES as u64 - buf.len() as u64) & !7;
            ok &= pread(fd, &mut buf, off) == Ok(buf.len()) && first_bad(off, &buf).is_none();
        }
        let tail = pread(fd, &mut buf, BIG_BYTES as u64 - 16);
        let past = pread(fd, &mut buf, BIG_BYTES as u64 + 5);
        c.check(
            "big_pread",
            ok && tail == Ok(16) && past == Ok(0),
            format_args!("200 reads; tail {tail:?}, past the end {past:?}"),
        );
        let st = fstat_of(fd);
        let by_path = stat_of(&at("big.bin"), true);
        c.check(
            "big_stat",
            matches!(st, Ok((ino, mode, size)) if mode & S_IFMT == S_IFREG
                && size == BIG_BYTES as u64 && by_path == Ok((ino, mode, size))),
            format_args!("fstat {st:?}, stat {by_path:?}"),
        );
        let _ = close(fd);
    }

    // Holes read as zeroes.
    match read_all(&at("sparse.bin")) {
        Ok(data) => {
            let data_ok = data.len() as u64 == SPARSE_BYTES
                && &data[SPARSE_DATA_AT..SPARSE_DATA_AT + SPARSE_DATA.len()] == SPARSE_DATA;
            let zeros = data[..SPARSE_DATA_AT].iter().all(|&b| b == 0)
                && data[SPARSE_DATA_AT + SPARSE_DATA.len()..]
                    .iter()
                    .all(|&b| b == 0);
            c.check(
                "sparse",
                data_ok && zeros,
                format_args!(
                    "{} bytes, data {data_ok}, zeros elsewhere {zeros}",
                    data.len()
                ),
            );
        }
        Err(e) => {
            c.check("sparse", false, format_args!("{e}"));
        }
    }

    // The symbolic link.
    let target = readlink(&at("link"));
    let lst = stat_of(&at("link"), false);
    let followed = stat_of(&at("link"), true);
    c.check(
        "symlink",
        target.as_deref() == Ok("big.bin")
            && matches!(lst, Ok((_, mode, 7)) if mode & S_IFMT == S_IFLNK)
            && matches!(followed, Ok((_, _, size)) if size == BIG_BYTES as u64),
        format_args!("target {target:?}, lstat {lst:?}, stat {followed:?}"),
    );

    // A directory listing and a small file in it.
    let names = list(&at("dir"));
    let want = [".", "..", "a.txt", "b.txt", "sub"];
    c.check(
        "listing",
        names
            .as_ref()
            .is_ok_and(|n| n.iter().map(String::as_str).eq(want)),
        format_args!("{names:?}"),
    );
    let alpha = read_all(&at("dir/a.txt"));
    c.check(
        "small_file",
        alpha.as_deref() == Ok(b"alpha\n".as_slice()),
        format_args!(
            "{:?}",
            alpha.map(|d| String::from_utf8_lossy(&d).into_owned())
        ),
    );

    // Shared and private mappings of the big file.
    if let Ok(fd) = open(&at("big.bin"), O_RDONLY) {
        // SAFETY: no MAP_FIXED; the file is open for reading.
        let shared = unsafe { mmap(0, BIG_BYTES, Prot::READ, MapFlags::SHARED, fd, 0) };
        match shared {
            Ok(p) => {
                // SAFETY: the mapping covers BIG_BYTES readable bytes.
                let bytes = unsafe { core::slice::from_raw_parts(p as *const u8, BIG_BYTES) };
                let bad = first_bad(0, bytes);
                c.check(
                    "mmap_shared",
                    bad.is_none(),
                    format_args!("first bad {bad:?}"),
                );
                // SAFETY: unmapping what was mapped above.
                let _ = unsafe { munmap(p, BIG_BYTES) };
            }
            Err(e) => {
                c.check("mmap_shared", false, format_args!("{e}"));
            }
        }
        let len = 1 << 20;
        let off = 3 << 20;
        // SAFETY: no MAP_FIXED; the file is open for reading.
        let private = unsafe { mmap(0, len, Prot::RW, MapFlags::PRIVATE, fd, off as u64) };
        match private {
            Ok(p) => {
                // SAFETY: the mapping covers `len` writable bytes.
                let bytes = unsafe { core::slice::from_raw_parts_mut(p, len) };
                let before = first_bad(off as u64, bytes);
                bytes[4096..4104].copy_from_slice(&0xdead_beef_u64.to_le_bytes());
                let mine = u64::from_le_bytes(bytes[4096..4104].try_into().unwrap());
                let mut disk = [0u8; 8];
                let again = pread(fd, &mut disk, off as u64 + 4096);
                let on_disk = u64::from_le_bytes(disk);
                c.check(
                    "mmap_private_cow",
                    before.is_none()
                        && mine == 0xdead_beef
                        && again == Ok(8)
                        && on_disk == big_word(off as u64 + 4096),
                    format_args!("before {before:?}, mine {mine:#x}, file {on_disk:#x}"),
                );
                // SAFETY: unmapping what was mapped above.
                let _ = unsafe { munmap(p, len) };
            }
            Err(e) => {
                c.check("mmap_private_cow", false, format_args!("{e}"));
            }
        }
        let _ = close(fd);
    }

    // A program from the disk.
    let prog = at("bin/ext4test");
    let status = match fork() {
        Ok(Fork::Child) => {
            let e = peios_rt::process::execve(&prog, &["ext4test", "--child"], &[]);
            println!("ext4test: execve {prog}: {e}");
            peios_rt::sys::process::exit_group(1)
        }
        Ok(Fork::Parent(pid)) => wait_pid(pid),
        Err(e) => Err(e),
    };
    c.check(
        "exec_from_disk",
        matches!(status, Ok(WaitStatus::Exited(42))),
        format_args!("{status:?}"),
    );

    // As the root (`--root`): the kernel's filesystems are mounted in it.
    if args.iter().any(|a| a == "--root") {
        let mounts = peios_bins::files::read_file("/proc/mounts").unwrap_or_default();
        let root_ro = mounts.lines().any(|l| l.starts_with("ext4 / ext4 ro"));
        let tmp = peios_bins::files::open("/tmp/rootfs-probe", O_WRONLY | O_CREAT);
        if let Ok(fd) = tmp {
            let _ = close(fd);
        }
        let meminfo = peios_bins::files::read_file("/proc/meminfo").is_ok();
        c.check(
            "root_mounts",
            root_ro && tmp.is_ok() && meminfo,
            format_args!(
                "/ ext4 ro {root_ro}, /tmp writable {:?}, /proc {meminfo}",
                tmp.map(|_| ())
            ),
        );
    }

    // The raw disk: readable by this (privileged) process, refused to a restricted one.
    let dev = alloc::format!("/dev/{}", args.opt("--dev").unwrap_or("vda"));
    match open(&dev, O_RDONLY) {
        Ok(fd) => {
            let mut magic = [0u8; 2];
            let got = pread(fd, &mut magic, 1024 + 0x38);
            c.check(
                "blockdev_read",
                got == Ok(2) && magic == [0x53, 0xef],
                format_args!("{dev}: superblock magic {magic:02x?} ({got:?})"),
            );
            let _ = close(fd);
        }
        Err(e) => {
            c.check("blockdev_read", false, format_args!("open {dev}: {e}"));
        }
    }
    let denied = peios_bins::peios::in_restricted_child(|| match open(&dev, O_RDONLY) {
        Err(Errno::EACCES | Errno::EPERM) => 0,
        _ => 1,
    });
    if !matches!(denied, Ok(WaitStatus::Exited(99))) {
        c.check(
            "blockdev_restricted",
            matches!(denied, Ok(WaitStatus::Exited(0))),
            format_args!("restricted child: {denied:?}"),
        );
    }

    // Read-only.
    c.expect_errno("write_erofs", open(&at("big.bin"), O_WRONLY), Errno::EROFS);
    c.expect_errno(
        "create_erofs",
        open(&at("new.txt"), O_WRONLY | O_CREAT),
        Errno::EROFS,
    );
    c.finish()
}
