//! The swap and reclaim lines of `/proc/vmstat`: counters of the swap layer and of the
//! reclaim tasks above it, in Linux's names.

use super::reclaim;
use super::swap::swap;
use alloc::string::String;

/// `/proc/vmstat` (the swap and fault counters this kernel keeps).
pub fn proc_vmstat() -> String {
    use core::sync::atomic::Ordering::Relaxed;
    let s = swap().stats();
    let r = reclaim::stats();
    alloc::format!(
        "pswpin {}\npswpout {}\nswap_ra {}\nswap_ra_hit {}\npgsteal_kswapd {}\npgsteal_direct {}\npgscan_kswapd {}\nallocstall_normal {}\npgsteal_anon {}\npgsteal_file {}\nnr_shmem {}\nnr_swapcached {}\noom_kill {}\n",
        s.pswpin.load(Relaxed),
        s.pswpout.load(Relaxed),
        s.readahead.load(Relaxed),
        s.readahead_hits.load(Relaxed),
        r.stolen_kswapd,
        r.stolen_direct,
        r.scanned,
        r.direct_waits,
        r.taken_anon,
        r.stolen_file,
        mm::swap::shmem::shmem_totals().0,
        swap().cached_pages(),
        crate::memd::oom::kills(),
    )
}
