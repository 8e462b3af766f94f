//! DAMON (data access monitoring), hardware-independent: a monitor splits a target
//! address space into regions, samples one page per region each sampling interval
//! (did its accessed bit get set since the last look?), counts the hits per region over
//! an aggregation interval, then publishes the counts and adapts the regions: neighbours
//! with similar counts merge, and regions split again while there are fewer than the
//! maximum, so the regions follow where the accesses are. The kernel runs it as a
//! kdamond task; [`AddressSpace::sample_accessed`](crate::aspace::AddressSpace::sample_accessed)
//! is the sampling primitive.

use alloc::vec::Vec;

use crate::frame::PAGE_SIZE;

/// One monitored region and what the last aggregation found in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Samples that found the region accessed in the last aggregation interval.
    pub nr_accesses: u32,
    /// Aggregation intervals its access count has stayed about the same.
    pub age: u32,
}

/// Region-count limits (Linux's `nr_regions/min` and `max`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Fewest regions (the VMAs are split into at least this many).
    pub min_regions: usize,
    /// Most regions.
    pub max_regions: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            min_regions: 10,
            max_regions: 1000,
        }
    }
}

/// A monitor over one target.
#[derive(Clone, Debug, Default)]
pub struct Monitor {
    regions: Vec<Region>,
    /// Hits counted in the current aggregation interval, per region.
    hits: Vec<u32>,
    limits: Limits,
    /// Where each monitored range starts: regions never merge across one, so a
    /// region never spans two mappings.
    range_starts: Vec<u64>,
    /// The last aggregation's regions.
    report: Vec<Region>,
    aggregations: u64,
    rng: u64,
}

impl Monitor {
    /// A monitor over `ranges` (the target's mappings, sorted, page-aligned).
    pub fn new(ranges: &[(u64, u64)], limits: Limits) -> Monitor {
        let mut m = Monitor {
            limits,
            rng: 0x9e37_79b9_7f4a_7c15,
            ..Monitor::default()
        };
        m.reset_regions(ranges);
        m
    }

    /// Starts over on `ranges`, splitting them evenly into at least `min_regions`.
    pub fn reset_regions(&mut self, ranges: &[(u64, u64)]) {
        let total_pages: u64 = ranges.iter().map(|(s, e)| (e - s) / PAGE_SIZE).sum();
        let per_region = (total_pages / self.limits.min_regions.max(1) as u64).max(1);
        self.regions.clear();
        self.range_starts = ranges.iter().map(|&(s, _)| s).collect();
        for &(start, end) in ranges {
            let mut at = start;
            while at < end {
                let next = (at + per_region * PAGE_SIZE).min(end);
                self.regions.push(Region {
                    start: at,
                    end: next,
                    nr_accesses: 0,
                    age: 0,
                });
                at = next;
            }
        }
        self.hits = alloc::vec![0; self.regions.len()];
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: the sampled page within a region.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// One sampling pass: `accessed(page)` reports (and resets) whether the page was
    /// accessed since it was last asked; `None` (unmapped) counts as not accessed.
    pub fn sample(&mut self, accessed: &mut dyn FnMut(u64) -> Option<bool>) {
        for i in 0..self.regions.len() {
            let r = self.regions[i];
            let pages = (r.end - r.start) / PAGE_SIZE;
            let page = r.start + (self.next_random() % pages.max(1)) * PAGE_SIZE;
            if accessed(page) == Some(true) {
                self.hits[i] += 1;
            }
        }
    }

    /// Ends an aggregation interval: publishes the counts, then merges neighbours whose
    /// counts differ by at most `merge_threshold` and splits regions in two while the
    /// count stays under the maximum.
    pub fn aggregate(&mut self, merge_threshold: u32) {
        for (r, &h) in self.regions.iter_mut().zip(&self.hits) {
            r.age = if r.nr_accesses.abs_diff(h) <= merge_threshold {
                r.age + 1
            } else {
                0
            };
            r.nr_accesses = h;
        }
        self.report = self.regions.clone();
        self.aggregations += 1;
        // Merge similar neighbours within one range.
        let mut merged: Vec<Region> = Vec::with_capacity(self.regions.len());
        let starts = core::mem::take(&mut self.range_starts);
        for r in self.regions.drain(..) {
            match merged.last_mut() {
                Some(last)
                    if last.end == r.start
                        && starts.binary_search(&r.start).is_err()
                        && last.nr_accesses.abs_diff(r.nr_accesses) <= merge_threshold =>
                {
                    let (a, b) = (
                        (last.end - last.start) / PAGE_SIZE,
                        (r.end - r.start) / PAGE_SIZE,
                    );
                    last.nr_accesses = ((u64::from(last.nr_accesses) * a
                        + u64::from(r.nr_accesses) * b)
                        / (a + b)) as u32;
                    last.age = last.age.min(r.age);
                    last.end = r.end;
                }
                _ => merged.push(r),
            }
        }
        // Split each region in two while there is room, so new boundaries get tried.
        let mut out = Vec::with_capacity(merged.len() * 2);
        let room = self.limits.max_regions.saturating_sub(merged.len());
        let mut splits = 0;
        for r in merged {
            let pages = (r.end - r.start) / PAGE_SIZE;
            if splits < room && pages >= 2 {
                let mid = r.start + (1 + self.next_random() % (pages - 1)) * PAGE_SIZE;
                out.push(Region { end: mid, ..r });
                out.push(Region { start: mid, ..r });
                splits += 1;
            } else {
                out.push(r);
            }
        }
        self.regions = out;
        self.range_starts = starts;
        self.hits = alloc::vec![0; self.regions.len()];
    }

    /// The last aggregation's regions.
    pub fn report(&self) -> &[Region] {
        &self.report
    }

    /// Aggregation intervals completed.
    pub fn aggregations(&self) -> u64 {
        self.aggregations
    }
}

/// The accesses a report shows in `[start, end)`: the highest `nr_accesses` of the
/// regions overlapping it.
pub fn hottest_in(report: &[Region], start: u64, end: u64) -> Option<u32> {
    report
        .iter()
        .filter(|r| r.start < end && r.end > start)
        .map(|r| r.nr_accesses)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOT: (u64, u64) = (0x10_0000, 0x10_0000 + 64 * PAGE_SIZE);
    const COLD: (u64, u64) = (0x80_0000, 0x80_0000 + 256 * PAGE_SIZE);

    fn run(m: &mut Monitor, intervals: usize, samples: usize) {
        for _ in 0..intervals {
            for _ in 0..samples {
                m.sample(&mut |page| Some(page >= HOT.0 && page < HOT.1));
            }
            m.aggregate(2);
        }
    }

    #[test]
    fn hot_and_cold_regions_are_told_apart() {
        let mut m = Monitor::new(&[HOT, COLD], Limits::default());
        run(&mut m, 5, 20);
        assert_eq!(m.aggregations(), 5);
        assert_eq!(hottest_in(m.report(), HOT.0, HOT.1), Some(20));
        assert_eq!(hottest_in(m.report(), COLD.0, COLD.1), Some(0));
        let covered: u64 = m.report().iter().map(|r| r.end - r.start).sum();
        assert_eq!(
            covered,
            (HOT.1 - HOT.0) + (COLD.1 - COLD.0),
            "no address lost"
        );
    }

    #[test]
    fn regions_adapt_within_limits() {
        let limits = Limits {
            min_regions: 4,
            max_regions: 12,
        };
        let mut m = Monitor::new(&[HOT, COLD], limits);
        run(&mut m, 10, 10);
        assert!(m.report().len() <= 12);
        // The cold range, all alike, ends up in few regions; the two ranges never mix.
        for r in m.report() {
            let in_hot = r.start >= HOT.0 && r.end <= HOT.1;
            let in_cold = r.start >= COLD.0 && r.end <= COLD.1;
            assert!(in_hot || in_cold, "{r:?} spans both ranges");
        }
    }

    #[test]
    fn adjacent_ranges_never_share_a_region() {
        let a = (0x10_0000, 0x10_0000 + 16 * PAGE_SIZE);
        let b = (a.1, a.1 + 16 * PAGE_SIZE);
        let mut m = Monitor::new(
            &[a, b],
            Limits {
                min_regions: 2,
                max_regions: 4,
            },
        );
        for _ in 0..10 {
            m.sample(&mut |_| Some(false));
            m.aggregate(2);
        }
        assert!(m.report().iter().all(|r| r.end <= a.1 || r.start >= b.0));
    }

    #[test]
    fn unmapped_samples_count_as_idle() {
        let mut m = Monitor::new(&[HOT], Limits::default());
        for _ in 0..10 {
            m.sample(&mut |_| None);
        }
        m.aggregate(0);
        assert_eq!(hottest_in(m.report(), HOT.0, HOT.1), Some(0));
    }
}
