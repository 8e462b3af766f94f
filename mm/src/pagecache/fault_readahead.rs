//! Readahead for page faults on mappings of disk files (Linux's
//! `do_sync_mmap_readahead` and `do_async_mmap_readahead`, with the window state of
//! one mapping where Linux keeps it in the open file).
//!
//! A fault that finds its page missing reads a window *now* and waits for its own
//! page only: read-around (the pages on both sides of the fault) for a fault that
//! looks random, a window forward from the fault for one that follows the last
//! window (or under `MADV_SEQUENTIAL`). The last part of every window carries the
//! *async mark*: a fault on the marked page, whether it is resident or still being
//! read, starts the next window without waiting for it, so a reader going forward
//! finds its pages already read or on their way. Each window confirmed that way is
//! twice the last, up to a limit. `MADV_RANDOM` reads only the faulting page; so does
//! a mapping whose faults keep missing the read-around windows (Linux's `mmap_miss`:
//! a hundred more misses than hits).
//!
//! The mark is one page index read with a relaxed load, so a fault on a resident page
//! that is not the mark costs one comparison (and one counter load).

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::readahead::{Window, DEFAULT_MAX_PAGES};
use super::{FileObject, Lookup, PageError, Source};
use crate::fault::wait::{FaultFuture, WaitReason};
use crate::frame::Pfn;

/// No async mark.
const NO_MARK: u64 = u64::MAX;

/// Misses beyond hits after which a mapping stops reading around its faults (Linux's
/// `MMAP_LOTSAMISS`).
const LOTS_OF_MISSES: u32 = 100;

/// How a mapping's pages are expected to be touched (`madvise`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultHint {
    /// No advice: read-around, growing windows once the faults prove sequential.
    Normal,
    /// `MADV_SEQUENTIAL`: windows forward from the first fault, at the largest size.
    Sequential,
    /// `MADV_RANDOM`: only the faulting page.
    Random,
}

/// The window of the last readahead: `[start, start + size)`, marked `async_size`
/// pages before its end.
#[derive(Clone, Copy, Debug, Default)]
struct State {
    start: u64,
    size: u64,
    async_size: u64,
}

impl State {
    fn mark(&self) -> u64 {
        if self.size == 0 || self.async_size == 0 {
            NO_MARK
        } else {
            self.start + self.size - self.async_size
        }
    }
}

/// The fault readahead state of one mapping (shared by the pieces a split makes of
/// it, and by a fork's copy, as Linux shares the open file's).
#[derive(Debug)]
pub struct FaultReadahead {
    /// The read-around window, in pages.
    around: u64,
    /// The async mark, for the lock-free check of a fault on a resident page.
    mark: AtomicU64,
    /// Misses minus hits, at most `10 * LOTS_OF_MISSES`.
    misses: AtomicU32,
    state: spin::Mutex<State>,
}

impl Default for FaultReadahead {
    fn default() -> FaultReadahead {
        FaultReadahead::new(DEFAULT_MAX_PAGES)
    }
}

impl FaultReadahead {
    /// A fresh state reading around faults `around_pages` at a time (at least 2).
    pub fn new(around_pages: u64) -> FaultReadahead {
        FaultReadahead {
            around: around_pages.max(2),
            mark: AtomicU64::new(NO_MARK),
            misses: AtomicU32::new(0),
            state: spin::Mutex::new(State::default()),
        }
    }

    /// The largest window: twice the read-around once the faults prove sequential,
    /// four times under `MADV_SEQUENTIAL`.
    fn limit(&self, hint: FaultHint) -> u64 {
        match hint {
            FaultHint::Sequential => self.around * 4,
            _ => self.around * 2,
        }
    }

    fn grow(&self, size: u64, hint: FaultHint) -> u64 {
        size.saturating_mul(2).clamp(self.around, self.limit(hint))
    }

    /// The page whose fault starts the next window, if any.
    pub fn mark(&self) -> Option<u64> {
        Some(self.mark.load(Ordering::Relaxed)).filter(|&m| m != NO_MARK)
    }

    fn set(&self, state: &mut State, new: State) -> Window {
        *state = new;
        self.mark.store(new.mark(), Ordering::Relaxed);
        Window {
            start: new.start,
            pages: new.size,
        }
    }

    /// A fault found page `index` missing (neither resident nor being read): the pages
    /// to read now, `index` among them.
    pub fn on_miss(&self, index: u64, hint: FaultHint) -> Window {
        let only_the_page = Window {
            start: index,
            pages: 1,
        };
        if hint == FaultHint::Random {
            return only_the_page;
        }
        let mut state = self.state.lock();
        // Inside the last window or just past it: a reader going forward that the
        // async windows did not keep ahead of (or whose pages reclaim took).
        let follows = state.size > 0 && index >= state.start && index <= state.start + state.size;
        if hint == FaultHint::Sequential || follows {
            let size = if hint == FaultHint::Sequential {
                self.limit(hint)
            } else {
                self.grow(state.size, hint)
            };
            let new = State {
                start: index,
                size,
                async_size: size / 2,
            };
            return self.set(&mut state, new);
        }
        let misses = self.misses.load(Ordering::Relaxed);
        if misses < 10 * LOTS_OF_MISSES {
            self.misses.store(misses + 1, Ordering::Relaxed);
        }
        if misses + 1 > LOTS_OF_MISSES {
            return only_the_page;
        }
        let start = index.saturating_sub(self.around / 2);
        let new = State {
            start,
            size: self.around,
            async_size: self.around / 4,
        };
        self.set(&mut state, new)
    }

    /// A fault found page `index` resident or being read: the next window to start
    /// (not to wait for) when `index` carries the mark. Each mark starts one window.
    pub fn on_hit(&self, index: u64, hint: FaultHint) -> Option<Window> {
        if hint == FaultHint::Random {
            return None;
        }
        let misses = self.misses.load(Ordering::Relaxed);
        if misses > 0 {
            self.misses.store(misses - 1, Ordering::Relaxed);
        }
        if self.mark.load(Ordering::Relaxed) != index {
            return None;
        }
        let mut state = self.state.lock();
        if state.mark() != index {
            return None; // another fault took this mark
        }
        let start = state.start + state.size;
        let size = self.grow(state.size, hint);
        let new = State {
            start,
            size,
            async_size: size,
        };
        Some(self.set(&mut state, new))
    }
}

impl FileObject {
    /// The frame of page `index` for a fault on a mapping whose readahead state is
    /// `ra` (one reference for the caller), and whether this fault started its read
    /// (a major fault). A miss reads the window `ra` gives and waits for the page
    /// only ([`WaitReason::PageLocked`]); a page found being read is waited for as
    /// a minor fault ([`WaitReason::PageReading`], as Linux counts a page readahead
    /// put in the cache); a fault on the async mark starts the next window first.
    /// Without `ra`, or for a file without a reader, this is
    /// [`get_page_traced`](Self::get_page_traced).
    pub fn fault_page(
        &self,
        index: u64,
        ra: Option<&FaultReadahead>,
        hint: FaultHint,
    ) -> Result<(Pfn, bool), PageError> {
        let (Some(ra), Source::Reader(io)) = (ra, &self.source) else {
            return self.get_page_traced(index);
        };
        if !self.page_in_file(index) {
            return Err(PageError::BeyondEof);
        }
        match self.cache.get(index) {
            Lookup::Hit(pfn) => {
                if let Some(w) = ra.on_hit(index, hint) {
                    self.start_reads(w.start, w.pages);
                }
                return Ok((pfn, false));
            }
            Lookup::Filling(c) => {
                if let Some(w) = ra.on_hit(index, hint) {
                    self.start_reads(w.start, w.pages);
                }
                let reason = WaitReason::PageReading {
                    file: self.id,
                    index,
                };
                return Err(PageError::Wait(FaultFuture::new(reason, c)));
            }
            Lookup::Swapped(_) => return self.get_page_traced(index),
            Lookup::Miss => {}
        }
        self.check_read(io, index)?;
        let w = ra.on_miss(index, hint);
        self.start_reads(w.start, w.pages);
        // The page's read, started above (or by another fault meanwhile).
        match self.cache.get(index) {
            Lookup::Hit(pfn) => Ok((pfn, true)),
            Lookup::Filling(c) => Err(PageError::Wait(self.wait_for(index, c))),
            // Not read (the window held no room for it): the plain path reads it.
            Lookup::Swapped(_) | Lookup::Miss => self.get_page_traced(index),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeSet;

    /// Faults on every page of `pages` in order, the cache holding what the windows
    /// read; returns (misses, windows started).
    fn fault_through(
        ra: &FaultReadahead,
        hint: FaultHint,
        pages: impl Iterator<Item = u64>,
    ) -> (u64, u64) {
        let mut cached = BTreeSet::new();
        let (mut misses, mut windows) = (0, 0);
        for index in pages {
            let w = if cached.contains(&index) {
                ra.on_hit(index, hint)
            } else {
                misses += 1;
                let w = ra.on_miss(index, hint);
                assert!(
                    w.start <= index && index < w.start + w.pages,
                    "{w:?} {index}"
                );
                Some(w)
            };
            if let Some(w) = w {
                windows += 1;
                cached.extend(w.start..w.start + w.pages);
            }
        }
        (misses, windows)
    }

    #[test]
    fn a_random_fault_reads_around_it_and_marks_the_window() {
        let ra = FaultReadahead::new(32);
        assert_eq!(ra.mark(), None);
        let w = ra.on_miss(100, FaultHint::Normal);
        assert_eq!(
            w,
            Window {
                start: 84,
                pages: 32
            }
        );
        assert_eq!(ra.mark(), Some(84 + 32 - 8));
        // Near the start of the file the window is clipped at page 0.
        let ra = FaultReadahead::new(32);
        assert_eq!(ra.on_miss(3, FaultHint::Normal).start, 0);
    }

    #[test]
    fn sequential_faults_grow_the_window_and_mostly_hit() {
        let ra = FaultReadahead::new(32);
        let (misses, windows) = fault_through(&ra, FaultHint::Normal, 0..4096);
        assert_eq!(misses, 1, "only the first fault waits for a read");
        // The read-around, then async windows doubling to 64 pages.
        assert!(windows <= 2 + 4096 / 64, "{windows} windows");
        let w = ra.on_hit(ra.mark().unwrap(), FaultHint::Normal).unwrap();
        assert_eq!(w.pages, 64, "capped at twice the read-around");
        // MADV_SEQUENTIAL: forward at once, larger windows, fewer of them.
        let seq = FaultReadahead::new(32);
        let first = seq.on_miss(0, FaultHint::Sequential);
        assert_eq!(
            first,
            Window {
                start: 0,
                pages: 128
            }
        );
        let seq = FaultReadahead::new(32);
        let (misses, seq_windows) = fault_through(&seq, FaultHint::Sequential, 0..4096);
        assert_eq!(misses, 1);
        assert!(seq_windows < windows, "{seq_windows} vs {windows}");
    }

    #[test]
    fn a_miss_following_the_window_reads_forward_and_larger() {
        let ra = FaultReadahead::new(32);
        let w = ra.on_miss(1000, FaultHint::Normal);
        // The reader got past the window without touching its mark (reclaim took it).
        let next = ra.on_miss(w.start + w.pages, FaultHint::Normal);
        assert_eq!(
            next,
            Window {
                start: w.start + w.pages,
                pages: 64
            }
        );
        assert_eq!(ra.mark(), Some(next.start + 32));
    }

    #[test]
    fn the_async_mark_starts_the_next_window_once() {
        let ra = FaultReadahead::new(32);
        let w = ra.on_miss(0, FaultHint::Normal);
        let mark = ra.mark().unwrap();
        assert!(mark > 0 && mark < w.start + w.pages);
        assert_eq!(ra.on_hit(mark - 1, FaultHint::Normal), None, "not the mark");
        let next = ra.on_hit(mark, FaultHint::Normal).expect("the mark");
        assert_eq!(next.start, w.start + w.pages);
        // The same page again (a retried fault, another thread): nothing more.
        assert_eq!(ra.on_hit(mark, FaultHint::Normal), None);
        // The new window is marked at its first page.
        assert_eq!(ra.mark(), Some(next.start));
    }

    #[test]
    fn random_advice_reads_only_the_page_and_never_marks() {
        let ra = FaultReadahead::new(32);
        let (misses, windows) = fault_through(&ra, FaultHint::Random, 0..256);
        assert_eq!((misses, windows), (256, 256));
        assert_eq!(
            ra.on_miss(7, FaultHint::Random),
            Window { start: 7, pages: 1 }
        );
        assert_eq!(ra.mark(), None);
    }

    /// `fault_page` on a disk file (pages 0..8 at device blocks 10.., page 8 a hole,
    /// pages 9.. at 100..; three runs).
    #[test]
    fn a_fault_reads_the_window_and_a_page_in_flight_is_a_minor_wait() {
        use crate::frame::PAGE_SIZE;
        use crate::pagecache::async_tests::disk_file;
        let (file, spawner, _soft, frames) = disk_file(29 * PAGE_SIZE);
        let ra = FaultReadahead::new(32);
        let Err(PageError::Wait(wait)) = file.fault_page(2, Some(&ra), FaultHint::Normal) else {
            panic!("a miss waits for the device");
        };
        assert!(matches!(
            wait.reason(),
            WaitReason::PageLocked { index: 2, .. }
        ));
        assert_eq!(
            file.reads_started(),
            3,
            "the read-around: the file's three runs"
        );
        // Another page of the window: already being read, a wait that is not major.
        let Err(PageError::Wait(minor)) = file.fault_page(20, Some(&ra), FaultHint::Normal) else {
            panic!("page 20 is in flight");
        };
        assert!(matches!(
            minor.reason(),
            WaitReason::PageReading { index: 20, .. }
        ));
        spawner.run_all();
        assert!(wait.is_ready() && minor.is_ready());
        let (pfn, major) = file.fault_page(2, Some(&ra), FaultHint::Normal).unwrap();
        assert!(!major);
        let mut b = [0u8; 1];
        frames.read(pfn, 0, &mut b);
        assert_eq!(b, [12], "page 2 is device block 12");
        frames.put(pfn);
        assert_eq!(file.reads_started(), 3, "no read for resident pages");
        // MADV_RANDOM: the faulting page alone.
        file.drop_clean();
        let random = FaultReadahead::new(32);
        assert!(file
            .fault_page(4, Some(&random), FaultHint::Random)
            .is_err());
        assert_eq!(file.reads_started(), 4);
        spawner.run_all();
        assert_eq!(file.cache().len(), 1);
        assert!(matches!(
            file.fault_page(29, Some(&random), FaultHint::Random),
            Err(PageError::BeyondEof)
        ));
    }

    #[test]
    fn random_faults_that_keep_missing_stop_reading_around() {
        let ra = FaultReadahead::new(32);
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut single = 0;
        for _ in 0..400 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // Far apart: never inside the last window.
            let index = (seed % 1_000_000) * 1000;
            if ra.on_miss(index, FaultHint::Normal).pages == 1 {
                single += 1;
            }
        }
        assert_eq!(single, 400 - LOTS_OF_MISSES as u64);
        // Hits earn read-around back.
        for _ in 0..10 * LOTS_OF_MISSES {
            ra.on_hit(u64::MAX - 1, FaultHint::Normal);
        }
        assert_eq!(ra.on_miss(5_000_000_000, FaultHint::Normal).pages, 32);
    }
}
