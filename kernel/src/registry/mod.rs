//! The registry of memory tunables. Every knob is a typed key with a default, a validator
//! (an invalid value is EINVAL and changes nothing), its own security descriptor, and the
//! `/proc/sys` or `/sys` paths Linux tools use. `ksyncd` applies a deployment's values at
//! boot by writing these files.

#![deny(unsafe_code)]

pub mod keys;

pub use keys::{all, Key, KeyKind};

use alloc::{format, string::String};
use conquer_once::spin::OnceCell;
use core::sync::atomic::Ordering;
use errno::{Errno, SysResult};
use security::{access_check, AccessMask, GenericMapping, SecurityDescriptor, Token};

static KEY_SD: OnceCell<SecurityDescriptor> = OnceCell::uninit();

/// The descriptor every memory key carries: everyone reads, administrators and SYSTEM write.
fn key_sd() -> &'static SecurityDescriptor {
    KEY_SD.get_or_init(|| SecurityDescriptor::for_registry_key(true))
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

    /// Parses and validates `text` (sysfs syntax: a decimal number, as `kstrtoul`, or
    /// a choice); stores it and runs the key's hook. EINVAL leaves the old value in place.
    pub fn set(&self, text: &str) -> SysResult<()> {
        let text = text.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\0');
        let value = match self.kind {
            KeyKind::Int { .. } | KeyKind::WriteOnly { .. } => {
                let v: u64 = text.parse().map_err(|_| Errno::EINVAL)?;
                self.in_range(v)?
            }
            KeyKind::Choice(choices) => choices
                .iter()
                .position(|c| *c == text)
                .ok_or(Errno::EINVAL)? as u64,
        };
        self.store(value)
    }

    /// As [`Key::set`] for a write to the key's `/proc/sys` file: numbers in
    /// `proc_dointvec_minmax` syntax ([`parse_sysctl_number`]).
    pub fn set_sysctl(&self, text: &[u8]) -> SysResult<()> {
        match self.kind {
            KeyKind::Int { .. } | KeyKind::WriteOnly { .. } => {
                let (negative, v) = parse_sysctl_number(text)?;
                if negative && v != 0 {
                    return Err(Errno::EINVAL);
                }
                self.store(self.in_range(v)?)
            }
            KeyKind::Choice(_) => self.set(core::str::from_utf8(text).map_err(|_| Errno::EINVAL)?),
        }
    }

    /// `v` if the key's range holds it, else EINVAL.
    fn in_range(&self, v: u64) -> SysResult<u64> {
        match self.kind {
            KeyKind::Int { min, max } | KeyKind::WriteOnly { min, max } if v >= min && v <= max => {
                Ok(v)
            }
            _ => Err(Errno::EINVAL),
        }
    }

    /// Runs the key's hook with a validated `value` and keeps what it settled on.
    fn store(&self, value: u64) -> SysResult<()> {
        let held = (self.apply)(value)?;
        if !matches!(self.kind, KeyKind::WriteOnly { .. }) {
            self.value.store(held, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Parses one number as Linux's `proc_get_long` does for a sysctl write: leading
/// whitespace skipped, an optional `-` (returned as the flag), then a digit must
/// follow (so `+5` is EINVAL), `strtoul` with base 0 (`0x` hex, leading `0` octal),
/// and the number must end the text or be followed by a space, tab or newline.
/// Overflow, a missing number or any other trailing byte is EINVAL.
pub fn parse_sysctl_number(text: &[u8]) -> SysResult<(bool, u64)> {
    let start = text
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
        .ok_or(Errno::EINVAL)?;
    let mut rest = &text[start..];
    let negative = rest.first() == Some(&b'-');
    if negative {
        rest = &rest[1..];
    }
    if !rest.first().is_some_and(u8::is_ascii_digit) {
        return Err(Errno::EINVAL);
    }
    let (radix, digits) = match rest {
        [b'0', b'x' | b'X', d, ..] if d.is_ascii_hexdigit() => (16, &rest[2..]),
        [b'0', ..] => (8, rest),
        _ => (10, rest),
    };
    let mut value = 0u64;
    let mut used = 0;
    for &b in digits {
        let Some(d) = char::from(b).to_digit(radix) else {
            break;
        };
        value = value
            .checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(d)))
            .ok_or(Errno::EINVAL)?;
        used += 1;
    }
    match digits.get(used) {
        None | Some(b' ' | b'\t' | b'\n') => Ok((negative, value)),
        Some(_) => Err(Errno::EINVAL),
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
    crate::proc::limits::THREADS_MAX.value.store(
        crate::proc::limits::default_threads_max(total.0 * 4096),
        Ordering::Relaxed,
    );
    crate::proc::limits::PID_MAX.value.store(
        u64::from(crate::proc::limits::default_pid_max(
            crate::smp::online_cpus(),
        )),
        Ordering::Relaxed,
    );
}
