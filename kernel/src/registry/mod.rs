//! The registry of memory tunables. Every knob is a typed key with a default, a validator
//! (an invalid value is EINVAL and changes nothing), its own security descriptor, and the
//! `/proc/sys` or `/sys` paths Linux tools use. `ksyncd` applies a deployment's values at
//! boot by writing these files.

pub mod keys;

pub use keys::{all, Key, KeyKind};

use crate::syscall::errno::{Errno, SysResult};
use alloc::{format, string::String};
use core::sync::atomic::Ordering;
use security::{access_check, AccessMask, GenericMapping, SecurityDescriptor, Token};
use spin::Once;

static KEY_SD: Once<SecurityDescriptor> = Once::new();

/// The descriptor every memory key carries: everyone reads, administrators and SYSTEM write.
fn key_sd() -> &'static SecurityDescriptor {
    KEY_SD.call_once(|| SecurityDescriptor::for_registry_key(true))
}

/// The key served at `path`, if any.
pub fn lookup_path(path: &str) -> Option<&'static Key> {
    all().find(|k| k.paths.contains(&path))
}

/// `/proc/sys/peios/registry`: every key as `name = value (default D)`.
pub fn listing() -> String {
    let mut s = String::new();
    for k in all() {
        let shown = k.render();
        let _ = core::fmt::Write::write_fmt(
            &mut s,
            format_args!("{} = {} (default {})\n", k.name, shown.trim(), k.default),
        );
    }
    s
}

/// Checks that `token` may read (`write == false`) or set the key; EACCES otherwise.
pub fn check_access(key: &Key, token: &Token, write: bool) -> SysResult<()> {
    let _ = key;
    let want = if write {
        AccessMask::KEY_SET_VALUE
    } else {
        AccessMask::KEY_QUERY_VALUE
    };
    access_check(token, key_sd(), want, &GenericMapping::KEY)
        .map(|_| ())
        .map_err(|_| Errno::EACCES)
}

impl Key {
    /// The current value as a number (choices: the index).
    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }

    /// The file contents Linux shows for this key.
    pub fn render(&self) -> String {
        let v = self.get();
        match self.kind {
            KeyKind::Int { .. } => format!("{v}\n"),
            KeyKind::WriteOnly { .. } => String::new(),
            KeyKind::Choice(choices) => {
                let mut s = String::new();
                for (i, c) in choices.iter().enumerate() {
                    if !s.is_empty() {
                        s.push(' ');
                    }
                    if i as u64 == v {
                        s.push('[');
                        s.push_str(c);
                        s.push(']');
                    } else {
                        s.push_str(c);
                    }
                }
                s.push('\n');
                s
            }
        }
    }

    /// Parses and validates `text`; stores it and runs the key's hook. EINVAL leaves the
    /// old value in place.
    pub fn set(&self, text: &str) -> SysResult<()> {
        let text = text.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\0');
        let value = match self.kind {
            KeyKind::Int { min, max } | KeyKind::WriteOnly { min, max } => {
                let v: u64 = text.parse().map_err(|_| Errno::EINVAL)?;
                if v < min || v > max {
                    return Err(Errno::EINVAL);
                }
                v
            }
            KeyKind::Choice(choices) => choices
                .iter()
                .position(|c| *c == text)
                .ok_or(Errno::EINVAL)? as u64,
        };
        let held = (self.apply)(value)?;
        if !matches!(self.kind, KeyKind::WriteOnly { .. }) {
            self.value.store(held, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Sets the defaults that depend on the machine (after the frame allocator exists).
pub fn init() {
    let total = crate::mem::frames::allocator().total_pages();
    crate::mem::aspace::tunables()
        .commitment()
        .set_ram_pages(total.0);
    keys::MIN_FREE_KBYTES
        .value
        .store(mm::frame::default_min_free_kbytes(total), Ordering::Relaxed);
    keys::THREADS_MAX.value.store(
        crate::proc::limits::default_threads_max(total.0 * 4096),
        Ordering::Relaxed,
    );
    keys::PID_MAX.value.store(
        u64::from(crate::proc::limits::default_pid_max(
            crate::smp::online_cpus(),
        )),
        Ordering::Relaxed,
    );
}
