//! Overcommit policy and the system-wide commit charge (`vm.overcommit_*`,
//! `CommitLimit` and `Committed_AS` in `/proc/meminfo`).
//!
//! Every private writable mapping (a VMA with `VM_ACCOUNT`) is charged, page for page,
//! when it appears or grows, and uncharged when it goes. The [`VmaTree`](crate::vma::VmaTree)
//! keeps the count of its accounted pages and charges each change itself, so the
//! charge is always the sum over live address spaces and cannot leak. Whether a charge
//! is allowed is the policy's (Linux's `__vm_enough_memory`):
//!
//! * [`Overcommit::Guess`] (0, the default): refuse only one request larger than all
//!   of RAM plus swap;
//! * [`Overcommit::Always`] (1): never refuse;
//! * [`Overcommit::Never`] (2): refuse when the charge would pass the commit limit,
//!   `overcommit_kbytes` (if set) or `overcommit_ratio` percent of RAM outside the
//!   huge-page pools, plus swap. `MAP_NORESERVE` is not honoured in this mode.
//!
//! Linux's admin and user reserves (`admin_reserve_kbytes`, `user_reserve_kbytes`) are
//! not modelled: the limit applies to everyone alike.

use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use crate::errno::MmError;
use crate::frame::PAGE_SIZE;

/// The RAM assumed until [`Commitment::set_ram_pages`] is called: the whole 47-bit user
/// address space, so nothing is refused for want of a figure.
pub const UNKNOWN_RAM_PAGES: u64 = (1 << 47) / PAGE_SIZE;

/// `vm.overcommit_memory`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Overcommit {
    /// 0: heuristic; only an obviously impossible single request fails.
    Guess = 0,
    /// 1: every request succeeds.
    Always = 1,
    /// 2: strict accounting against the commit limit.
    Never = 2,
}

impl Overcommit {
    /// The mode for a `vm.overcommit_memory` value; `None` outside 0-2.
    pub fn from_value(value: u64) -> Option<Overcommit> {
        match value {
            0 => Some(Overcommit::Guess),
            1 => Some(Overcommit::Always),
            2 => Some(Overcommit::Never),
            _ => None,
        }
    }
}

/// The policy knobs, the memory they apply to, and the charge.
#[derive(Debug)]
pub struct Commitment {
    mode: AtomicU8,
    ratio_percent: AtomicU64,
    limit_kbytes: AtomicU64,
    ram_pages: AtomicU64,
    swap_pages: AtomicU64,
    hugetlb_pages: AtomicU64,
    committed_pages: AtomicU64,
}

impl Default for Commitment {
    fn default() -> Self {
        Commitment {
            mode: AtomicU8::new(Overcommit::Guess as u8),
            ratio_percent: AtomicU64::new(50),
            limit_kbytes: AtomicU64::new(0),
            ram_pages: AtomicU64::new(UNKNOWN_RAM_PAGES),
            swap_pages: AtomicU64::new(0),
            hugetlb_pages: AtomicU64::new(0),
            committed_pages: AtomicU64::new(0),
        }
    }
}

impl Commitment {
    /// Linux's defaults (mode 0, ratio 50, no kbytes) over [`UNKNOWN_RAM_PAGES`].
    pub fn new() -> Commitment {
        Commitment::default()
    }

    /// The current mode.
    pub fn mode(&self) -> Overcommit {
        Overcommit::from_value(self.mode.load(Ordering::Relaxed).into())
            .unwrap_or(Overcommit::Guess)
    }

    /// Sets `vm.overcommit_memory`.
    pub fn set_mode(&self, mode: Overcommit) {
        self.mode.store(mode as u8, Ordering::Relaxed);
    }

    /// Sets `vm.overcommit_ratio` (percent of RAM).
    pub fn set_ratio(&self, percent: u64) {
        self.ratio_percent.store(percent, Ordering::Relaxed);
    }

    /// Sets `vm.overcommit_kbytes` (0: use the ratio instead).
    pub fn set_limit_kbytes(&self, kbytes: u64) {
        self.limit_kbytes.store(kbytes, Ordering::Relaxed);
    }

    /// Sets the RAM the limit is a share of (the kernel's usable frames).
    pub fn set_ram_pages(&self, pages: u64) {
        self.ram_pages.store(pages, Ordering::Relaxed);
    }

    /// Sets the swap space that counts on top of the limit.
    pub fn set_swap_pages(&self, pages: u64) {
        self.swap_pages.store(pages, Ordering::Relaxed);
    }

    /// Sets the RAM held by huge-page pools (left out of the ratio's share).
    pub fn set_hugetlb_pages(&self, pages: u64) {
        self.hugetlb_pages.store(pages, Ordering::Relaxed);
    }

    /// `CommitLimit`, in pages.
    pub fn limit_pages(&self) -> u64 {
        let kbytes = self.limit_kbytes.load(Ordering::Relaxed);
        let base = if kbytes != 0 {
            kbytes / (PAGE_SIZE / 1024)
        } else {
            let ram = self.ram_pages.load(Ordering::Relaxed);
            let usable = ram.saturating_sub(self.hugetlb_pages.load(Ordering::Relaxed));
            let ratio = self.ratio_percent.load(Ordering::Relaxed);
            ((usable as u128 * ratio as u128) / 100).min(u64::MAX as u128) as u64
        };
        base.saturating_add(self.swap_pages.load(Ordering::Relaxed))
    }

    /// `Committed_AS`, in pages.
    pub fn committed_pages(&self) -> u64 {
        self.committed_pages.load(Ordering::Relaxed)
    }

    /// Charges `pages` if the policy allows them; `ENOMEM` (and nothing charged) if not.
    pub fn try_charge(&self, pages: u64) -> Result<(), MmError> {
        if pages == 0 {
            return Ok(());
        }
        let total = self
            .committed_pages
            .fetch_add(pages, Ordering::Relaxed)
            .saturating_add(pages);
        let allowed = match self.mode() {
            Overcommit::Always => true,
            Overcommit::Guess => {
                let ram = self.ram_pages.load(Ordering::Relaxed);
                pages <= ram.saturating_add(self.swap_pages.load(Ordering::Relaxed))
            }
            Overcommit::Never => total <= self.limit_pages(),
        };
        if allowed {
            Ok(())
        } else {
            self.uncharge(pages);
            Err(MmError::NoMemory)
        }
    }

    /// Charges `pages` whatever the policy says (a copy of what is already charged).
    pub fn force_charge(&self, pages: u64) {
        self.committed_pages.fetch_add(pages, Ordering::Relaxed);
    }

    /// Returns `pages` to the pool.
    pub fn uncharge(&self, pages: u64) {
        let before = self.committed_pages.fetch_sub(pages, Ordering::Relaxed);
        debug_assert!(before >= pages, "commit charge underflow");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_ram(pages: u64) -> Commitment {
        let c = Commitment::new();
        c.set_ram_pages(pages);
        c
    }

    #[test]
    fn guess_refuses_only_a_request_larger_than_ram_and_swap() {
        let c = with_ram(1000);
        c.set_swap_pages(100);
        assert!(c.try_charge(1100).is_ok());
        assert!(c.try_charge(1100).is_ok(), "the total may pass RAM");
        assert_eq!(c.try_charge(1101), Err(MmError::NoMemory));
        assert_eq!(c.committed_pages(), 2200);
    }

    #[test]
    fn always_never_refuses() {
        let c = with_ram(10);
        c.set_mode(Overcommit::Always);
        assert!(c.try_charge(1 << 40).is_ok());
        c.uncharge(1 << 40);
        assert_eq!(c.committed_pages(), 0);
    }

    #[test]
    fn never_holds_the_total_to_ratio_of_ram_outside_hugetlb_plus_swap() {
        let c = with_ram(1000);
        c.set_mode(Overcommit::Never);
        assert_eq!(c.limit_pages(), 500);
        c.set_hugetlb_pages(200);
        assert_eq!(c.limit_pages(), 400);
        c.set_swap_pages(50);
        assert_eq!(c.limit_pages(), 450);
        assert!(c.try_charge(400).is_ok());
        assert!(c.try_charge(50).is_ok());
        assert_eq!(c.try_charge(1), Err(MmError::NoMemory));
        assert_eq!(c.committed_pages(), 450, "a refused charge leaves nothing");
        c.uncharge(10);
        assert!(c.try_charge(10).is_ok());
    }

    #[test]
    fn kbytes_replaces_the_ratio() {
        let c = with_ram(1000);
        c.set_mode(Overcommit::Never);
        c.set_limit_kbytes(400);
        assert_eq!(c.limit_pages(), 100);
        c.set_limit_kbytes(0);
        c.set_ratio(100);
        assert_eq!(c.limit_pages(), 1000);
    }

    #[test]
    fn mode_values() {
        assert_eq!(Overcommit::from_value(2), Some(Overcommit::Never));
        assert_eq!(Overcommit::from_value(3), None);
    }
}
