//! Transparent huge pages: the system-wide settings (`enabled`, `defrag`, the
//! khugepaged pace) that decide which anonymous faults try a 2 MiB leaf, and the
//! `thp_*` event counters `/proc/vmstat` shows. The fault itself is in
//! `fault/huge.rs`, the collapse in `aspace/collapse.rs`.

use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use crate::vma::flags::VmFlags;

/// `/sys/kernel/mm/transparent_hugepage/enabled`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThpEnabled {
    /// Every private anonymous mapping not marked `MADV_NOHUGEPAGE`.
    Always,
    /// Only mappings marked `MADV_HUGEPAGE`.
    Madvise,
    /// None.
    Never,
}

/// `/sys/kernel/mm/transparent_hugepage/defrag`: how hard a fault tries for a huge
/// page. With no compaction here, it decides whether a fault may wait for memory
/// (the kernel's allocator may then drain per-CPU caches and wait for frees) or must
/// fall back to 4 KiB pages at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThpDefrag {
    /// Every eligible fault may wait.
    Always,
    /// No fault waits (khugepaged collapses later).
    Defer,
    /// `MADV_HUGEPAGE` mappings wait, others defer.
    DeferMadvise,
    /// `MADV_HUGEPAGE` mappings wait, others fall back at once.
    Madvise,
    /// No fault waits.
    Never,
}

/// Event counters (`/proc/vmstat`).
#[derive(Default)]
pub struct ThpCounters {
    /// `thp_fault_alloc`: faults that mapped a huge page.
    pub fault_alloc: AtomicU64,
    /// `thp_fault_fallback`: eligible faults that got 4 KiB pages for lack of a
    /// huge page.
    pub fault_fallback: AtomicU64,
    /// `thp_collapse_alloc`: huge pages khugepaged allocated and mapped.
    pub collapse_alloc: AtomicU64,
    /// `thp_collapse_alloc_failed`.
    pub collapse_alloc_failed: AtomicU64,
    /// khugepaged's completed passes over every address space (`full_scans`).
    pub full_scans: AtomicU64,
    /// Ranges khugepaged collapsed (`pages_collapsed`).
    pub pages_collapsed: AtomicU64,
}

/// Linux's default `khugepaged/pages_to_scan`.
pub const DEFAULT_PAGES_TO_SCAN: u64 = 4096;
/// Linux's default `khugepaged/scan_sleep_millisecs`.
pub const DEFAULT_SCAN_SLEEP_MS: u64 = 10_000;
/// Linux's default `khugepaged/alloc_sleep_millisecs`.
pub const DEFAULT_ALLOC_SLEEP_MS: u64 = 60_000;

/// The THP settings and counters every address space shares.
pub struct Thp {
    enabled: AtomicU8,
    defrag: AtomicU8,
    pages_to_scan: AtomicU64,
    scan_sleep_ms: AtomicU64,
    alloc_sleep_ms: AtomicU64,
    max_ptes_none: AtomicU64,
    /// The event counters.
    pub counters: ThpCounters,
}

impl Default for Thp {
    fn default() -> Self {
        Thp {
            enabled: AtomicU8::new(ThpEnabled::Madvise as u8),
            defrag: AtomicU8::new(ThpDefrag::Madvise as u8),
            pages_to_scan: AtomicU64::new(DEFAULT_PAGES_TO_SCAN),
            scan_sleep_ms: AtomicU64::new(DEFAULT_SCAN_SLEEP_MS),
            alloc_sleep_ms: AtomicU64::new(DEFAULT_ALLOC_SLEEP_MS),
            max_ptes_none: AtomicU64::new(0),
            counters: ThpCounters::default(),
        }
    }
}

impl ThpEnabled {
    /// From the registry's choice index (`always`, `madvise`, `never`).
    pub fn from_index(i: u64) -> Option<ThpEnabled> {
        [ThpEnabled::Always, ThpEnabled::Madvise, ThpEnabled::Never]
            .get(usize::try_from(i).ok()?)
            .copied()
    }
}

impl ThpDefrag {
    /// From the registry's choice index (`always`, `defer`, `defer+madvise`,
    /// `madvise`, `never`).
    pub fn from_index(i: u64) -> Option<ThpDefrag> {
        [
            ThpDefrag::Always,
            ThpDefrag::Defer,
            ThpDefrag::DeferMadvise,
            ThpDefrag::Madvise,
            ThpDefrag::Never,
        ]
        .get(usize::try_from(i).ok()?)
        .copied()
    }
}

impl Thp {
    /// The current `enabled` mode.
    pub fn enabled(&self) -> ThpEnabled {
        ThpEnabled::from_index(u64::from(self.enabled.load(Ordering::Relaxed)))
            .unwrap_or(ThpEnabled::Never)
    }

    /// Sets `enabled`.
    pub fn set_enabled(&self, mode: ThpEnabled) {
        self.enabled.store(mode as u8, Ordering::Relaxed);
    }

    /// The current `defrag` mode.
    pub fn defrag(&self) -> ThpDefrag {
        ThpDefrag::from_index(u64::from(self.defrag.load(Ordering::Relaxed)))
            .unwrap_or(ThpDefrag::Never)
    }

    /// Sets `defrag`.
    pub fn set_defrag(&self, mode: ThpDefrag) {
        self.defrag.store(mode as u8, Ordering::Relaxed);
    }

    /// Whether a private anonymous VMA with `flags` gets huge pages on faults (and
    /// from khugepaged).
    pub fn vma_eligible(&self, flags: VmFlags) -> bool {
        if flags.intersects(VmFlags::NOHUGEPAGE | VmFlags::MAYSHARE | VmFlags::HUGETLB) {
            return false;
        }
        match self.enabled() {
            ThpEnabled::Always => true,
            ThpEnabled::Madvise => flags.contains(VmFlags::HUGEPAGE),
            ThpEnabled::Never => false,
        }
    }

    /// Whether a fault in a VMA with `flags` may wait for a huge page (else it
    /// falls back to 4 KiB pages at once).
    pub fn fault_may_wait(&self, flags: VmFlags) -> bool {
        let advised = flags.contains(VmFlags::HUGEPAGE);
        match self.defrag() {
            ThpDefrag::Always => true,
            ThpDefrag::DeferMadvise | ThpDefrag::Madvise => advised,
            ThpDefrag::Defer | ThpDefrag::Never => false,
        }
    }

    /// `khugepaged/pages_to_scan`: 4 KiB pages looked at per pass.
    pub fn pages_to_scan(&self) -> u64 {
        self.pages_to_scan.load(Ordering::Relaxed)
    }

    /// Sets `pages_to_scan` (at least 1).
    pub fn set_pages_to_scan(&self, pages: u64) {
        self.pages_to_scan.store(pages.max(1), Ordering::Relaxed);
    }

    /// `khugepaged/scan_sleep_millisecs`: the pause between passes.
    pub fn scan_sleep_ms(&self) -> u64 {
        self.scan_sleep_ms.load(Ordering::Relaxed)
    }

    /// Sets `scan_sleep_millisecs`.
    pub fn set_scan_sleep_ms(&self, ms: u64) {
        self.scan_sleep_ms.store(ms, Ordering::Relaxed);
    }

    /// `khugepaged/alloc_sleep_millisecs`: the pause after a failed allocation.
    pub fn alloc_sleep_ms(&self) -> u64 {
        self.alloc_sleep_ms.load(Ordering::Relaxed)
    }

    /// Sets `alloc_sleep_millisecs`.
    pub fn set_alloc_sleep_ms(&self, ms: u64) {
        self.alloc_sleep_ms.store(ms, Ordering::Relaxed);
    }

    /// `khugepaged/max_ptes_none`: how many of the 512 pages may be missing (filled
    /// with zeroes) for a range to be collapsed. 0 here by default: only fully
    /// populated ranges are collapsed, so khugepaged never grows a process's memory.
    pub fn max_ptes_none(&self) -> u64 {
        self.max_ptes_none.load(Ordering::Relaxed)
    }

    /// Sets `max_ptes_none` (at most 511).
    pub fn set_max_ptes_none(&self, n: u64) {
        self.max_ptes_none.store(n.min(511), Ordering::Relaxed);
    }

    pub(crate) fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eligibility_follows_enabled_and_advice() {
        let t = Thp::default();
        let anon = VmFlags::READ | VmFlags::WRITE;
        assert!(!t.vma_eligible(anon));
        assert!(t.vma_eligible(anon | VmFlags::HUGEPAGE));
        t.set_enabled(ThpEnabled::Always);
        assert!(t.vma_eligible(anon));
        assert!(!t.vma_eligible(anon | VmFlags::NOHUGEPAGE));
        assert!(!t.vma_eligible(anon | VmFlags::MAYSHARE));
        t.set_enabled(ThpEnabled::Never);
        assert!(!t.vma_eligible(anon | VmFlags::HUGEPAGE));
        assert_eq!(ThpEnabled::from_index(3), None);
        t.set_defrag(ThpDefrag::Never);
        assert!(!t.fault_may_wait(anon | VmFlags::HUGEPAGE));
        t.set_defrag(ThpDefrag::Madvise);
        assert!(t.fault_may_wait(anon | VmFlags::HUGEPAGE) && !t.fault_may_wait(anon));
    }
}
