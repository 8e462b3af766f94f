//! The hook a VMA's faults can be handed to (userfaultfd) and what it is told (a leaf:
//! the VMA code names it without the fault path).

use alloc::sync::Arc;

use super::access::Access;
use super::wait::{Completion, FaultFuture};

/// Which faults a VMA's [`FaultInterceptor`] sees (userfaultfd's register modes, with
/// Linux's `UFFDIO_REGISTER_MODE_*` values).
pub mod intercept_mode {
    /// Faults on pages with nothing behind them (anonymous memory with no entry).
    pub const MISSING: u8 = 1;
    /// Write faults on pages the interceptor write-protected.
    pub const WP: u8 = 2;
    /// Faults on shared-memory pages the page cache holds but the VMA does not map.
    pub const MINOR: u8 = 4;
    /// Every mode.
    pub const ALL: u8 = MISSING | WP | MINOR;
}

/// What an interceptor does with a fault it takes over.
#[derive(Debug)]
pub enum Intercept {
    /// The fault waits for this future, then retries.
    Wait(FaultFuture),
    /// The fault fails with `SIGBUS` (`UFFD_FEATURE_SIGBUS`; a kernel access gets
    /// `EFAULT`).
    SigBus,
}

/// A change to intercepted memory the interceptor may want to hear of (userfaultfd's
/// non-cooperative events).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterceptEvent {
    /// `munmap` removed `[start, end)`.
    Unmap {
        /// First byte.
        start: u64,
        /// End (exclusive).
        end: u64,
    },
    /// `madvise` dropped the pages of `[start, end)`.
    Remove {
        /// First byte.
        start: u64,
        /// End (exclusive).
        end: u64,
    },
    /// `mremap` moved `len` bytes from `from` to `to`.
    Remap {
        /// Old start.
        from: u64,
        /// New start.
        to: u64,
        /// Old length.
        len: u64,
    },
}

/// A hook on a VMA's faults (userfaultfd): it may take a fault over by returning a
/// future, completed once it has supplied the page (for instance with
/// [`AddressSpace::fill_missing_page`](crate::aspace::AddressSpace::fill_missing_page)),
/// lifted the protection, or woken the fault.
/// Each method is called only for the modes the VMA was registered with.
pub trait FaultInterceptor: Send + Sync {
    /// Called for a fault at `addr` (page-aligned) with no entry; `None` lets the
    /// fault proceed normally.
    fn missing(&self, addr: u64, access: Access, user: bool) -> Option<Intercept>;

    /// Called for a write fault at `addr` (page-aligned) on a present page; `Some`
    /// when the interceptor holds the page write-protected.
    fn write_protected(&self, _addr: u64, _user: bool) -> Option<Intercept> {
        None
    }

    /// Called for a fault at `addr` (page-aligned) with no entry whose shared-memory
    /// page the page cache already holds (minor mode).
    fn minor(&self, _addr: u64, _access: Access, _user: bool) -> Option<Intercept> {
        None
    }

    /// Told of `event` on memory it intercepts (after the change); a completion the
    /// caller should wait for (the handler has read the event) when it reports it.
    fn notify(&self, _event: InterceptEvent) -> Option<Arc<Completion>> {
        None
    }
}
