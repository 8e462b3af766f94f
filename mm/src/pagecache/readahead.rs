//! The readahead window of one open file (Linux's `file_ra_state`, simplified): a
//! read that misses starts a window of pages; reads that keep going forward grow it
//! (doubling up to a maximum), and a read that jumps elsewhere starts over small. The
//! last part of each window carries the *async mark*: when a read reaches it, the
//! next window is started before the reader gets there. `POSIX_FADV_RANDOM` turns
//! readahead off (only the pages asked for are read); `SEQUENTIAL` doubles the
//! maximum.

/// Default largest window, in pages (128 KiB, Linux's `VM_READAHEAD_PAGES`).
pub const DEFAULT_MAX_PAGES: u64 = 32;

/// How the file is expected to be read (`posix_fadvise`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Advice {
    /// The default window.
    Normal,
    /// Forward: twice the default maximum.
    Sequential,
    /// Random: no readahead.
    Random,
}

/// A range of pages to start reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// First page.
    pub start: u64,
    /// Pages.
    pub pages: u64,
}

/// One open file's readahead state.
#[derive(Clone, Debug)]
pub struct Readahead {
    advice: Advice,
    /// The current window (pages), empty before the first miss.
    start: u64,
    size: u64,
    /// The window's tail, from the async mark to its end.
    async_size: u64,
    /// The page after the last one read, for telling sequential reads.
    next_expected: Option<u64>,
    base_max: u64,
}

impl Readahead {
    /// A fresh state with a largest window of `max_pages` (at least 1).
    pub fn new(max_pages: u64) -> Readahead {
        Readahead {
            advice: Advice::Normal,
            start: 0,
            size: 0,
            async_size: 0,
            next_expected: None,
            base_max: max_pages.max(1),
        }
    }

    /// Sets the advice (`posix_fadvise`); the current window is forgotten.
    pub fn advise(&mut self, advice: Advice) {
        self.advice = advice;
        self.size = 0;
        self.async_size = 0;
    }

    /// The advice in force.
    pub fn advice(&self) -> Advice {
        self.advice
    }

    fn max(&self) -> u64 {
        match self.advice {
            Advice::Sequential => self.base_max * 2,
            _ => self.base_max,
        }
    }

    /// The first window for a read of `request` pages (Linux's `get_init_ra_size`).
    fn initial_size(&self, request: u64) -> u64 {
        let max = self.max();
        let size = request.max(1).next_power_of_two();
        if size <= max / 32 {
            size * 4
        } else if size <= max / 4 {
            size * 2
        } else {
            max
        }
        .min(max)
    }

    fn next_size(&self, size: u64) -> u64 {
        let max = self.max();
        if size < max / 16 { size * 4 } else { size * 2 }.min(max)
    }

    /// The async mark: the page whose access starts the next window.
    fn mark(&self) -> Option<u64> {
        (self.size > 0 && self.async_size > 0).then(|| self.start + self.size - self.async_size)
    }

    /// A read of `request` pages from `index` found `index` not resident: the pages
    /// to read now (the request at least).
    pub fn on_miss(&mut self, index: u64, request: u64) -> Window {
        let request = request.max(1);
        if self.advice == Advice::Random {
            self.size = 0;
            return Window {
                start: index,
                pages: request,
            };
        }
        let sequential =
            self.next_expected == Some(index) || (self.size > 0 && index == self.start + self.size);
        let size = if sequential && self.size > 0 {
            self.next_size(self.size).max(request)
        } else {
            self.initial_size(request).max(request)
        };
        self.start = index;
        self.size = size;
        // The part beyond the request is read ahead; its start is the async mark.
        self.async_size = size - request.min(size);
        Window {
            start: index,
            pages: size,
        }
    }

    /// A read found pages `[index, index + pages)` resident: if that covers the async
    /// mark, the next window (to start without waiting).
    pub fn on_hit(&mut self, index: u64, pages: u64) -> Option<Window> {
        if self.advice == Advice::Random {
            return None;
        }
        let mark = self.mark()?;
        if mark < index || mark >= index.saturating_add(pages) {
            return None;
        }
        self.start += self.size;
        self.size = self.next_size(self.size);
        self.async_size = self.size;
        Some(Window {
            start: self.start,
            pages: self.size,
        })
    }

    /// A read ended at page `last` (inclusive).
    pub fn note_read(&mut self, last: u64) {
        self.next_expected = last.checked_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulates reading `pages` pages one page per call from `from`, counting the
    /// windows (device reads, when every window is one request).
    fn sequential_requests(ra: &mut Readahead, from: u64, pages: u64) -> u64 {
        let mut resident = alloc::collections::BTreeSet::new();
        let mut requests = 0;
        for index in from..from + pages {
            if !resident.contains(&index) {
                let w = ra.on_miss(index, 1);
                requests += 1;
                resident.extend(w.start..w.start + w.pages);
            } else if let Some(w) = ra.on_hit(index, 1) {
                requests += 1;
                resident.extend(w.start..w.start + w.pages);
            }
            ra.note_read(index);
        }
        requests
    }

    #[test]
    fn window_grows_on_sequential_reads() {
        let mut ra = Readahead::new(32);
        let first = ra.on_miss(0, 1);
        assert_eq!(first, Window { start: 0, pages: 4 });
        assert_eq!(ra.on_hit(0, 1), None);
        let next = ra
            .on_hit(1, 3)
            .expect("the mark is inside the first window");
        assert_eq!(next, Window { start: 4, pages: 8 });
        let after = ra
            .on_hit(4, 1)
            .expect("a whole async window: its first page");
        assert_eq!(
            after,
            Window {
                start: 12,
                pages: 16
            }
        );
        assert_eq!(
            ra.on_hit(12, 1).unwrap(),
            Window {
                start: 28,
                pages: 32
            }
        );
        assert_eq!(ra.on_hit(28, 1).unwrap().pages, 32, "capped at the maximum");
    }

    #[test]
    fn sequential_reading_needs_few_requests_random_many() {
        let mut normal = Readahead::new(32);
        let seq = sequential_requests(&mut normal, 0, 1024);
        assert!(
            seq <= 1024 / 32 + 4,
            "{seq} requests: the ramp-up, then full windows"
        );
        let mut random = Readahead::new(32);
        random.advise(Advice::Random);
        assert_eq!(random.advice(), Advice::Random);
        assert_eq!(sequential_requests(&mut random, 0, 1024), 1024);
        let mut fast = Readahead::new(32);
        fast.advise(Advice::Sequential);
        assert!(sequential_requests(&mut fast, 0, 1024) < seq);
    }

    #[test]
    fn a_jump_starts_small_again() {
        let mut ra = Readahead::new(32);
        ra.on_miss(0, 1);
        ra.note_read(0);
        let w = ra.on_miss(1, 1);
        assert_eq!(w.pages, 8, "sequential miss grows the window");
        ra.note_read(1);
        assert_eq!(
            ra.on_miss(500, 1),
            Window {
                start: 500,
                pages: 4
            }
        );
        assert_eq!(ra.on_miss(900, 64).pages, 64, "never less than the request");
    }
}
