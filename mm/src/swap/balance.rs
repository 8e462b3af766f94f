//! How a reclaim round splits its work between anonymous pages (written to swap) and
//! clean file pages (dropped from the page cache): `vm.swappiness`, in the spirit of
//! Linux's `get_scan_count`.
//!
//! Swappiness is the relative I/O cost reclaim assumes for the two kinds, on a scale
//! where anonymous and file pages together weigh [`MAX_SWAPPINESS`]: anonymous pages
//! get `swappiness / 200` of the round and file pages the rest (60, the default,
//! leans on the page cache; 100 treats both alike; 200 takes anonymous pages only).
//! As on Linux, the fraction yields to what the system can do:
//!
//! * no swap room: file pages only;
//! * no file pages to drop, or so few that file pages and free memory together are
//!   under the `high` watermark (Linux's `file_is_tiny`): anonymous pages only, even
//!   at swappiness 0;
//! * close to OOM (a whole turn of the clock freed nothing, Linux's priority 0):
//!   both kinds alike, unless swappiness is 0;
//! * the file share a round could not fill (nothing droppable left on this node)
//!   passes to anonymous pages ([`ScanSplit::anon_after_file`]), so swappiness 0
//!   avoids swap while the page cache can give, and swaps rather than kill once it
//!   cannot.
//!
//! Linux also weighs the recent cost of each kind (refaults, rotations); this kernel
//! does not track refaults, so the split is swappiness alone.

/// The largest `vm.swappiness` (Linux's `MAX_SWAPPINESS`).
pub const MAX_SWAPPINESS: u32 = 200;
/// `vm.swappiness`'s default.
pub const DEFAULT_SWAPPINESS: u32 = 60;

/// What a round knows when it decides its split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanInputs {
    /// `vm.swappiness` (clamped to [`MAX_SWAPPINESS`]).
    pub swappiness: u32,
    /// Pages the round aims to free.
    pub round_pages: usize,
    /// Whether some swap area can take a page.
    pub swap_room: bool,
    /// Page-cache pages (candidates to drop).
    pub file_pages: u64,
    /// Free pages on the node.
    pub free_pages: u64,
    /// The node's `high` watermark, in pages.
    pub high_pages: u64,
    /// Reclaim made no progress for a whole turn of its clock: near OOM.
    pub desperate: bool,
}

/// Pages a round asks of each kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanSplit {
    /// Anonymous pages to take (written to swap).
    pub anon: usize,
    /// Clean file pages to drop.
    pub file: usize,
}

impl ScanSplit {
    /// The anonymous pages to take once the file shrinkers dropped `file_freed` of
    /// the [`file`](Self::file) share: the share left unfilled moves to anonymous
    /// pages.
    pub fn anon_after_file(&self, file_freed: usize) -> usize {
        self.anon + self.file.saturating_sub(file_freed)
    }
}

/// The split of one round.
pub fn scan_split(i: &ScanInputs) -> ScanSplit {
    let round = i.round_pages;
    let all_file = ScanSplit {
        anon: 0,
        file: round,
    };
    let all_anon = ScanSplit {
        anon: round,
        file: 0,
    };
    let swappiness = i.swappiness.min(MAX_SWAPPINESS);
    if !i.swap_room {
        return all_file;
    }
    if i.file_pages == 0 {
        return all_anon;
    }
    if i.desperate && swappiness != 0 {
        return ScanSplit {
            anon: round / 2,
            file: round - round / 2,
        };
    }
    if i.file_pages.saturating_add(i.free_pages) <= i.high_pages {
        return all_anon;
    }
    let anon = (round as u64 * u64::from(swappiness) + u64::from(MAX_SWAPPINESS) / 2)
        / u64::from(MAX_SWAPPINESS);
    let anon = anon as usize;
    ScanSplit {
        anon,
        file: round - anon,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(swappiness: u32) -> ScanInputs {
        ScanInputs {
            swappiness,
            round_pages: 256,
            swap_room: true,
            file_pages: 40_000,
            free_pages: 1_000,
            high_pages: 2_000,
            desperate: false,
        }
    }

    #[test]
    fn the_fraction_follows_swappiness() {
        assert_eq!(scan_split(&inputs(0)), ScanSplit { anon: 0, file: 256 });
        assert_eq!(
            scan_split(&inputs(60)),
            ScanSplit {
                anon: 77,
                file: 179
            }
        );
        assert_eq!(
            scan_split(&inputs(100)),
            ScanSplit {
                anon: 128,
                file: 128
            }
        );
        assert_eq!(scan_split(&inputs(200)), ScanSplit { anon: 256, file: 0 });
        // Monotonic: more swappiness never takes fewer anonymous pages.
        let mut last = 0;
        for s in 0..=MAX_SWAPPINESS {
            let split = scan_split(&inputs(s));
            assert_eq!(split.anon + split.file, 256);
            assert!(split.anon >= last, "swappiness {s}");
            last = split.anon;
        }
    }

    #[test]
    fn out_of_range_swappiness_is_clamped() {
        assert_eq!(scan_split(&inputs(1000)), scan_split(&inputs(200)));
    }

    #[test]
    fn without_swap_room_only_file_pages_go() {
        for s in [0, 60, 200] {
            let i = ScanInputs {
                swap_room: false,
                ..inputs(s)
            };
            assert_eq!(scan_split(&i), ScanSplit { anon: 0, file: 256 });
        }
    }

    #[test]
    fn a_tiny_page_cache_sends_even_swappiness_zero_to_swap() {
        let nothing = ScanInputs {
            file_pages: 0,
            ..inputs(0)
        };
        assert_eq!(scan_split(&nothing), ScanSplit { anon: 256, file: 0 });
        let tiny = ScanInputs {
            file_pages: 500,
            free_pages: 1_000,
            high_pages: 2_000,
            ..inputs(0)
        };
        assert_eq!(scan_split(&tiny), ScanSplit { anon: 256, file: 0 });
        // Just above the watermark: the fraction again.
        let enough = ScanInputs {
            file_pages: 1_001,
            ..tiny
        };
        assert_eq!(scan_split(&enough), ScanSplit { anon: 0, file: 256 });
    }

    #[test]
    fn near_oom_both_kinds_go_unless_swappiness_is_zero() {
        let desperate = |s| ScanInputs {
            desperate: true,
            ..inputs(s)
        };
        assert_eq!(
            scan_split(&desperate(200)),
            ScanSplit {
                anon: 128,
                file: 128
            }
        );
        assert_eq!(
            scan_split(&desperate(1)),
            ScanSplit {
                anon: 128,
                file: 128
            }
        );
        assert_eq!(scan_split(&desperate(0)), ScanSplit { anon: 0, file: 256 });
    }

    #[test]
    fn an_unfilled_file_share_moves_to_anon() {
        let split = scan_split(&inputs(60));
        assert_eq!(split.anon_after_file(179), 77);
        assert_eq!(split.anon_after_file(100), 77 + 79);
        assert_eq!(split.anon_after_file(0), 256);
        // More dropped than asked (a shrinker overshoots): never less than the share.
        assert_eq!(split.anon_after_file(500), 77);
        let zero = scan_split(&inputs(0));
        assert_eq!(zero.anon_after_file(256), 0);
        assert_eq!(zero.anon_after_file(0), 256);
    }
}
