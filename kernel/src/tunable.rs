//! A tunable: a named value with a range, a default, the files that show it and a hook
//! that applies it. Each layer declares the keys it owns next to the code they steer;
//! `registry` lists them all, applies the configuration and serves /proc/sys and /sys.

#![deny(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering};
use errno::SysResult;

/// What values a key takes.
#[derive(Clone, Copy, Debug)]
pub enum KeyKind {
    /// An integer in `min..=max`.
    Int {
        /// Smallest valid value.
        min: u64,
        /// Largest valid value.
        max: u64,
    },
    /// One of these words (Linux shows them as `[chosen] other other`).
    Choice(&'static [&'static str]),
    /// A trigger: an integer in range that is acted on and not kept (reads are empty).
    WriteOnly {
        /// Smallest valid value.
        min: u64,
        /// Largest valid value.
        max: u64,
    },
}

/// One tunable.
pub struct Key {
    /// Registry name (`vm.max_map_count`).
    pub name: &'static str,
    /// Files that show it.
    pub paths: &'static [&'static str],
    /// Value type and range.
    pub kind: KeyKind,
    /// Default value (choices: the index).
    pub default: u64,
    /// Current value.
    pub value: AtomicU64,
    /// Applies a validated value to the kernel (may refuse it); returns the value the
    /// key then holds (a pool that could not grow as asked holds less).
    pub apply: fn(u64) -> SysResult<u64>,
}

/// A key with its value at `default`.
pub const fn key(
    name: &'static str,
    paths: &'static [&'static str],
    kind: KeyKind,
    default: u64,
    apply: fn(u64) -> SysResult<u64>,
) -> Key {
    Key {
        name,
        paths,
        kind,
        default,
        value: AtomicU64::new(default),
        apply,
    }
}

/// An `apply` hook that keeps the value as it is (a knob read where it acts).
pub fn keep(v: u64) -> SysResult<u64> {
    Ok(v)
}

impl Key {
    /// The current value as a number (choices: the index).
    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}
