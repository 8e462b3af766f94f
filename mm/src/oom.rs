//! The OOM killer's choice, hardware-independent: Linux's badness heuristic
//! (`oom_badness`) and victim selection, and the `/proc/<pid>/oom_score` figure.
//!
//! A process's badness is its resident pages, plus the kernel memory it holds (page
//! tables and VMAs, in pages: Linux adds `mm_pgtables_bytes / PAGE_SIZE`), plus its
//! `oom_score_adj` in thousandths of all memory; `-1000` means "never" (it is not a candidate at all). The victim is
//! the candidate with the highest badness; `vm.oom_kill_allocating_task` makes the
//! process whose allocation failed the victim instead, if it may be killed.

/// `OOM_SCORE_ADJ_MIN`: never chosen.
pub const OOM_SCORE_ADJ_MIN: i32 = -1000;
/// `OOM_SCORE_ADJ_MAX`.
pub const OOM_SCORE_ADJ_MAX: i32 = 1000;

/// One process the killer may consider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Process id.
    pub pid: u32,
    /// Resident pages (its page tables' present entries).
    pub rss_pages: u64,
    /// Kernel memory held for it (page-table pages and VMAs), in pages.
    pub kernel_pages: u64,
    /// `oom_score_adj`.
    pub adj: i32,
    /// False for processes that must never be killed (init) or are already dying.
    pub killable: bool,
}

/// Linux's `oom_badness`: `None` for a process that is never chosen.
pub fn badness(c: &Candidate, total_pages: u64) -> Option<i64> {
    if !c.killable || c.adj <= OOM_SCORE_ADJ_MIN {
        return None;
    }
    let adj = i64::from(c.adj) * (total_pages / 1000) as i64;
    Some((c.rss_pages + c.kernel_pages) as i64 + adj)
}

/// `/proc/<pid>/oom_score`: badness scaled to 0..=2000 (1000 + badness in thousandths
/// of all memory), 0 for a process that is never chosen.
pub fn oom_score(c: &Candidate, total_pages: u64) -> u64 {
    match badness(c, total_pages) {
        None => 0,
        Some(b) => {
            let per_mille = b * 1000 / total_pages.max(1) as i64;
            (1000 + per_mille).clamp(0, 2000) as u64
        }
    }
}

/// The victim: the allocating process when `kill_allocating` and it may be killed,
/// else the candidate with the highest badness (ties go to the first listed).
pub fn choose_victim(
    candidates: &[Candidate],
    allocating: u32,
    kill_allocating: bool,
    total_pages: u64,
) -> Option<u32> {
    if kill_allocating {
        if let Some(c) = candidates.iter().find(|c| c.pid == allocating) {
            if badness(c, total_pages).is_some() {
                return Some(c.pid);
            }
        }
    }
    let mut best: Option<(i64, u32)> = None;
    for c in candidates {
        if let Some(b) = badness(c, total_pages) {
            if best.is_none_or(|(top, _)| b > top) {
                best = Some((b, c.pid));
            }
        }
    }
    best.map(|(_, pid)| pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(pid: u32, rss_pages: u64, adj: i32) -> Candidate {
        Candidate {
            pid,
            rss_pages,
            kernel_pages: 0,
            adj,
            killable: true,
        }
    }

    const TOTAL: u64 = 500_000;

    #[test]
    fn the_biggest_is_chosen_and_adj_moves_the_choice() {
        let procs = [cand(2, 1000, 0), cand(3, 90_000, 0), cand(4, 500, 0)];
        assert_eq!(choose_victim(&procs, 4, false, TOTAL), Some(3));
        // +1000 outweighs any size; -1000 is never chosen.
        let procs = [cand(2, 1000, 1000), cand(3, 90_000, -1000), cand(4, 500, 0)];
        assert_eq!(choose_victim(&procs, 4, false, TOTAL), Some(2));
        let procs = [cand(3, 90_000, -1000)];
        assert_eq!(choose_victim(&procs, 3, false, TOTAL), None);
    }

    #[test]
    fn the_allocating_process_when_asked_and_killable() {
        let procs = [cand(2, 1000, 1000), cand(3, 90_000, 0), cand(4, 500, 0)];
        assert_eq!(choose_victim(&procs, 4, true, TOTAL), Some(4));
        let procs = [cand(2, 1000, 0), cand(4, 500, -1000)];
        assert_eq!(choose_victim(&procs, 4, true, TOTAL), Some(2), "falls back");
        let mut init = cand(1, 900_000, 0);
        init.killable = false;
        assert_eq!(choose_victim(&[init], 1, true, TOTAL), None);
    }

    #[test]
    fn kernel_memory_counts_like_resident_pages() {
        let mut tables = cand(3, 1000, 0);
        tables.kernel_pages = 9000;
        let procs = [cand(2, 5000, 0), tables];
        assert_eq!(choose_victim(&procs, 2, false, TOTAL), Some(3));
        assert_eq!(oom_score(&tables, TOTAL), 1020);
    }

    #[test]
    fn oom_score_is_scaled_to_two_thousand() {
        assert_eq!(oom_score(&cand(2, 0, 0), TOTAL), 1000);
        assert_eq!(oom_score(&cand(2, TOTAL / 2, 0), TOTAL), 1500);
        assert_eq!(oom_score(&cand(2, TOTAL, 1000), TOTAL), 2000);
        assert_eq!(
            oom_score(&cand(2, 100, -500), TOTAL),
            501,
            "C division truncates"
        );
        assert_eq!(oom_score(&cand(2, TOTAL, -1000), TOTAL), 0);
    }
}
