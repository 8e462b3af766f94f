//! The memory and task-limit keys, their defaults, ranges, paths and hooks.

use core::sync::atomic::Ordering;
use errno::SysResult;
use mm::frame::NodeId;
use mm::hugetlb::HugeSize;

use crate::tunable::{keep, key};
pub use crate::tunable::{Key, KeyKind};

fn set_watermark_scale(v: u64) -> SysResult<u64> {
    let min_free = MIN_FREE_KBYTES.get();
    crate::mem::frames::allocator()
        .set_watermarks(if min_free == 0 { None } else { Some(min_free) }, v as u32);
    Ok(v)
}

fn set_min_free(v: u64) -> SysResult<u64> {
    crate::mem::frames::allocator().set_watermarks(Some(v), WATERMARK_SCALE_FACTOR.get() as u32);
    Ok(v)
}

fn set_max_map_count(v: u64) -> SysResult<u64> {
    crate::mem::aspace::tunables().set_max_map_count(v as usize);
    Ok(v)
}

fn set_mmap_min_addr(v: u64) -> SysResult<u64> {
    crate::mem::aspace::tunables().set_mmap_min_addr(v);
    Ok(v)
}

/// `vm.max_map_count` (Linux default 65530).
pub static MAX_MAP_COUNT: Key = key(
    "vm.max_map_count",
    &["/proc/sys/vm/max_map_count"],
    KeyKind::Int {
        min: 1,
        max: i32::MAX as u64,
    },
    65530,
    set_max_map_count,
);
/// `vm.mmap_min_addr` (65536).
pub static MMAP_MIN_ADDR: Key = key(
    "vm.mmap_min_addr",
    &["/proc/sys/vm/mmap_min_addr"],
    KeyKind::Int {
        min: 0,
        max: 1 << 32,
    },
    65536,
    set_mmap_min_addr,
);
/// `vm.watermark_scale_factor` (10, i.e. 0.1% of the node).
pub static WATERMARK_SCALE_FACTOR: Key = key(
    "vm.watermark_scale_factor",
    &["/proc/sys/vm/watermark_scale_factor"],
    KeyKind::Int { min: 1, max: 3000 },
    10,
    set_watermark_scale,
);
/// `vm.min_free_kbytes` (0 here means "Linux's formula").
pub static MIN_FREE_KBYTES: Key = key(
    "vm.min_free_kbytes",
    &["/proc/sys/vm/min_free_kbytes"],
    KeyKind::Int {
        min: 128,
        max: 1 << 26,
    },
    0,
    set_min_free,
);

/// The system-wide keys, in the order `ksyncd` documents them (the per-node pool keys
/// follow them in [`all`]).
static SYSTEM_KEYS: [&Key; 28] = [
    &MAX_MAP_COUNT,
    &MMAP_MIN_ADDR,
    &WATERMARK_SCALE_FACTOR,
    &MIN_FREE_KBYTES,
    &OVERCOMMIT_MEMORY,
    &OVERCOMMIT_RATIO,
    &OVERCOMMIT_KBYTES,
    &crate::memd::userfaultfd::UNPRIVILEGED_USERFAULTFD,
    &crate::vfs::memfd::MEMFD_NOEXEC,
    &DROP_CACHES,
    &crate::memd::reclaim::SWAPPINESS,
    &NR_HUGEPAGES,
    &THP_ENABLED,
    &THP_DEFRAG,
    &KHUGEPAGED_PAGES_TO_SCAN,
    &KHUGEPAGED_SCAN_SLEEP,
    &KHUGEPAGED_ALLOC_SLEEP,
    &KHUGEPAGED_MAX_PTES_NONE,
    &KSM_RUN,
    &DAMON_KDAMONDS,
    &STAT_INTERVAL,
    &PAGE_CLUSTER,
    &crate::memd::damon::PAGEOUT_MIN_AGE,
    &crate::memd::oom::OOM_KILL_ALLOCATING_TASK,
    &crate::memd::hung::HUNG_TASK_TIMEOUT_SECS,
    &crate::proc::limits::THREADS_MAX,
    &crate::proc::limits::PID_MAX,
    &crate::proc::exec::RANDOMIZE_VA_SPACE,
];

/// Every key: the system-wide ones, then the per-node pools and interleave weights.
pub fn all() -> impl Iterator<Item = &'static Key> {
    SYSTEM_KEYS
        .iter()
        .chain(NODE_POOL_KEYS.iter())
        .chain(NODE_WEIGHT_KEYS.iter())
        .copied()
}

fn commitment() -> &'static mm::commit::Commitment {
    crate::mem::aspace::tunables().commitment()
}

fn set_overcommit_memory(v: u64) -> SysResult<u64> {
    let mode = mm::commit::Overcommit::from_value(v).ok_or(errno::Errno::EINVAL)?;
    commitment().set_mode(mode);
    Ok(v)
}

/// Linux: setting the ratio clears `overcommit_kbytes`, and the other way round.
fn set_overcommit_ratio(v: u64) -> SysResult<u64> {
    OVERCOMMIT_KBYTES.value.store(0, Ordering::Relaxed);
    commitment().set_limit_kbytes(0);
    commitment().set_ratio(v);
    Ok(v)
}

fn set_overcommit_kbytes(v: u64) -> SysResult<u64> {
    OVERCOMMIT_RATIO.value.store(0, Ordering::Relaxed);
    commitment().set_ratio(0);
    commitment().set_limit_kbytes(v);
    Ok(v)
}

/// `vm.overcommit_memory`: 0 heuristic, 1 always, 2 never (strict commit accounting).
pub static OVERCOMMIT_MEMORY: Key = key(
    "vm.overcommit_memory",
    &["/proc/sys/vm/overcommit_memory"],
    KeyKind::Int { min: 0, max: 2 },
    0,
    set_overcommit_memory,
);
/// `vm.overcommit_ratio` (50).
pub static OVERCOMMIT_RATIO: Key = key(
    "vm.overcommit_ratio",
    &["/proc/sys/vm/overcommit_ratio"],
    KeyKind::Int {
        min: 0,
        max: 1 << 32,
    },
    50,
    set_overcommit_ratio,
);
/// `vm.overcommit_kbytes` (0).
pub static OVERCOMMIT_KBYTES: Key = key(
    "vm.overcommit_kbytes",
    &["/proc/sys/vm/overcommit_kbytes"],
    KeyKind::Int {
        min: 0,
        max: 1 << 48,
    },
    0,
    set_overcommit_kbytes,
);
/// Page caches of higher layers (disk filesystems) that `drop_caches` also drops: each
/// is called with whether unused file objects go too (value 2) and returns the pages
/// it dropped.
static DROP_CACHES_HOOKS: spin::Mutex<alloc::vec::Vec<DropCachesHook>> =
    spin::Mutex::new(alloc::vec::Vec::new());

/// A page cache's `drop_caches`: whether unused file objects go too; the pages dropped.
pub type DropCachesHook = fn(bool) -> u64;

/// Adds a page cache for `drop_caches` to drop (a filesystem installs it at mount).
pub fn on_drop_caches(hook: DropCachesHook) {
    let mut hooks = DROP_CACHES_HOOKS.lock();
    if !hooks.iter().any(|h| core::ptr::fn_addr_eq(*h, hook)) {
        hooks.push(hook);
    }
}

fn drop_caches(v: u64) -> SysResult<u64> {
    if v & 1 != 0 {
        let mut pages = crate::initramfs::drop_page_cache();
        let hooks = DROP_CACHES_HOOKS.lock().clone();
        for hook in hooks {
            pages += hook(v & 2 != 0);
        }
        log::info!("drop_caches: {pages} page-cache pages dropped");
    }
    Ok(v)
}

/// `vm.drop_caches`: 1 page cache (clean pages no mapping holds), 2 reclaimable kernel
/// objects (the file objects of disk files nobody holds, with 1), 3 both.
pub static DROP_CACHES: Key = key(
    "vm.drop_caches",
    &["/proc/sys/vm/drop_caches"],
    KeyKind::WriteOnly { min: 1, max: 3 },
    0,
    drop_caches,
);
/// `vm.nr_hugepages`: the 2 MiB pools of all nodes together.
pub static NR_HUGEPAGES: Key = key(
    "vm.nr_hugepages",
    &[
        "/proc/sys/vm/nr_hugepages",
        "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages",
    ],
    KeyKind::Int {
        min: 0,
        max: 1 << 30,
    },
    0,
    set_nr_hugepages,
);
/// THP mode.
pub static THP_ENABLED: Key = key(
    "mm.transparent_hugepage.enabled",
    &["/sys/kernel/mm/transparent_hugepage/enabled"],
    KeyKind::Choice(&["always", "madvise", "never"]),
    1,
    set_thp_enabled,
);
fn thp() -> &'static mm::thp::Thp {
    crate::mem::aspace::tunables().thp()
}
fn set_thp_enabled(v: u64) -> SysResult<u64> {
    thp().set_enabled(mm::thp::ThpEnabled::from_index(v).ok_or(errno::Errno::EINVAL)?);
    Ok(v)
}
fn set_thp_defrag(v: u64) -> SysResult<u64> {
    thp().set_defrag(mm::thp::ThpDefrag::from_index(v).ok_or(errno::Errno::EINVAL)?);
    Ok(v)
}
fn set_khugepaged_pages_to_scan(v: u64) -> SysResult<u64> {
    thp().set_pages_to_scan(v);
    Ok(v)
}
fn set_khugepaged_scan_sleep(v: u64) -> SysResult<u64> {
    thp().set_scan_sleep_ms(v);
    crate::memd::khugepaged::kick();
    Ok(v)
}
fn set_khugepaged_alloc_sleep(v: u64) -> SysResult<u64> {
    thp().set_alloc_sleep_ms(v);
    Ok(v)
}
fn set_khugepaged_max_ptes_none(v: u64) -> SysResult<u64> {
    thp().set_max_ptes_none(v);
    Ok(v)
}
/// khugepaged: 4 KiB pages looked at per pass.
pub static KHUGEPAGED_PAGES_TO_SCAN: Key = key(
    "mm.transparent_hugepage.khugepaged.pages_to_scan",
    &["/sys/kernel/mm/transparent_hugepage/khugepaged/pages_to_scan"],
    KeyKind::Int {
        min: 1,
        max: u32::MAX as u64,
    },
    mm::thp::DEFAULT_PAGES_TO_SCAN,
    set_khugepaged_pages_to_scan,
);
/// khugepaged: milliseconds between passes.
pub static KHUGEPAGED_SCAN_SLEEP: Key = key(
    "mm.transparent_hugepage.khugepaged.scan_sleep_millisecs",
    &["/sys/kernel/mm/transparent_hugepage/khugepaged/scan_sleep_millisecs"],
    KeyKind::Int {
        min: 0,
        max: u32::MAX as u64,
    },
    mm::thp::DEFAULT_SCAN_SLEEP_MS,
    set_khugepaged_scan_sleep,
);
/// khugepaged: milliseconds to wait after a huge page could not be allocated.
pub static KHUGEPAGED_ALLOC_SLEEP: Key = key(
    "mm.transparent_hugepage.khugepaged.alloc_sleep_millisecs",
    &["/sys/kernel/mm/transparent_hugepage/khugepaged/alloc_sleep_millisecs"],
    KeyKind::Int {
        min: 0,
        max: u32::MAX as u64,
    },
    mm::thp::DEFAULT_ALLOC_SLEEP_MS,
    set_khugepaged_alloc_sleep,
);
/// khugepaged: missing pages a collapsed range may have (0: fully populated only).
pub static KHUGEPAGED_MAX_PTES_NONE: Key = key(
    "mm.transparent_hugepage.khugepaged.max_ptes_none",
    &["/sys/kernel/mm/transparent_hugepage/khugepaged/max_ptes_none"],
    KeyKind::Int { min: 0, max: 511 },
    0,
    set_khugepaged_max_ptes_none,
);
/// THP defrag mode.
pub static THP_DEFRAG: Key = key(
    "mm.transparent_hugepage.defrag",
    &["/sys/kernel/mm/transparent_hugepage/defrag"],
    KeyKind::Choice(&["always", "defer", "defer+madvise", "madvise", "never"]),
    3,
    set_thp_defrag,
);
fn set_ksm_run(v: u64) -> SysResult<u64> {
    crate::memd::ksmd::set_run(v);
    Ok(v)
}

/// KSM: 0 stopped (the default: the timing side channel), 1 run, 2 unmerge.
pub static KSM_RUN: Key = key(
    "mm.ksm.run",
    &["/sys/kernel/mm/ksm/run"],
    KeyKind::Int { min: 0, max: 2 },
    0,
    set_ksm_run,
);
fn set_nr_kdamonds(v: u64) -> SysResult<u64> {
    crate::memd::damon::set_count(v);
    Ok(v)
}

/// DAMON monitors (0: DAMON off, the default).
pub static DAMON_KDAMONDS: Key = key(
    "mm.damon.nr_kdamonds",
    &["/sys/kernel/mm/damon/admin/kdamonds/nr_kdamonds"],
    KeyKind::Int { min: 0, max: 64 },
    0,
    set_nr_kdamonds,
);
/// `vm.stat_interval` seconds (1).
pub static STAT_INTERVAL: Key = key(
    "vm.stat_interval",
    &["/proc/sys/vm/stat_interval"],
    KeyKind::Int { min: 1, max: 3600 },
    1,
    keep,
);
fn set_page_cluster(v: u64) -> SysResult<u64> {
    crate::memd::swap::swap().set_page_cluster(v as u32);
    Ok(v)
}

/// `vm.page-cluster` (swap readahead, log2 pages; 3).
pub static PAGE_CLUSTER: Key = key(
    "vm.page-cluster",
    &["/proc/sys/vm/page-cluster"],
    KeyKind::Int { min: 0, max: 10 },
    3,
    set_page_cluster,
);

/// Resizes the global default-size pool (spread over the nodes).
fn set_nr_hugepages(v: u64) -> SysResult<u64> {
    let pools = crate::mem::hugetlb::pools();
    pools.resize_total(crate::mem::frames::allocator(), HugeSize::Mib2, v);
    Ok(sync_hugepage_keys(&NR_HUGEPAGES))
}

/// Resizes node `NODE`'s pool of `KIB`-sized pages.
fn set_node_pool<const NODE: u32, const KIB: u64>(v: u64) -> SysResult<u64> {
    let size = HugeSize::from_kib(KIB).ok_or(errno::Errno::EINVAL)?;
    let pools = crate::mem::hugetlb::pools();
    pools.resize_node(crate::mem::frames::allocator(), NodeId(NODE), size, v);
    Ok(sync_hugepage_keys(node_pool_key(NODE, size)))
}

fn node_pool_key(node: u32, size: HugeSize) -> &'static Key {
    NODE_POOL_KEYS[node as usize * 2 + usize::from(size == HugeSize::Gib1)]
}

/// Stores every pool's size in its key (a node write changes the global count and
/// the other way round) and tells the commit limit; returns `key`'s new value.
fn sync_hugepage_keys(key: &Key) -> u64 {
    let pools = crate::mem::hugetlb::pools();
    NR_HUGEPAGES
        .value
        .store(pools.total(HugeSize::Mib2), Ordering::Relaxed);
    for node in 0..NODE_POOL_KEYS.len() as u32 / 2 {
        for size in HugeSize::ALL {
            node_pool_key(node, size)
                .value
                .store(pools.count(NodeId(node), size), Ordering::Relaxed);
        }
    }
    commitment().set_hugetlb_pages(pools.frames_held());
    key.value.load(Ordering::Relaxed)
}

/// A node's pool key: `mm.hugepages.nodeN.hugepages-<K>kB.nr_hugepages`.
macro_rules! node_pool_key {
    ($name:ident, $node:literal, $kib:literal) => {
        #[doc = concat!("Node ", $node, "'s ", $kib, "kB huge-page pool.")]
        pub static $name: Key = key(
            concat!(
                "mm.hugepages.node",
                $node,
                ".hugepages-",
                $kib,
                "kB.nr_hugepages"
            ),
            &[concat!(
                "/sys/devices/system/node/node",
                $node,
                "/hugepages/hugepages-",
                $kib,
                "kB/nr_hugepages"
            )],
            KeyKind::Int {
                min: 0,
                max: 1 << 30,
            },
            0,
            set_node_pool::<$node, $kib>,
        );
    };
}

node_pool_key!(NODE0_HUGEPAGES_2048KB, 0, 2048);
node_pool_key!(NODE0_HUGEPAGES_1048576KB, 0, 1048576);
node_pool_key!(NODE1_HUGEPAGES_2048KB, 1, 2048);
node_pool_key!(NODE1_HUGEPAGES_1048576KB, 1, 1048576);
node_pool_key!(NODE2_HUGEPAGES_2048KB, 2, 2048);
node_pool_key!(NODE2_HUGEPAGES_1048576KB, 2, 1048576);
node_pool_key!(NODE3_HUGEPAGES_2048KB, 3, 2048);
node_pool_key!(NODE3_HUGEPAGES_1048576KB, 3, 1048576);
node_pool_key!(NODE4_HUGEPAGES_2048KB, 4, 2048);
node_pool_key!(NODE4_HUGEPAGES_1048576KB, 4, 1048576);
node_pool_key!(NODE5_HUGEPAGES_2048KB, 5, 2048);
node_pool_key!(NODE5_HUGEPAGES_1048576KB, 5, 1048576);
node_pool_key!(NODE6_HUGEPAGES_2048KB, 6, 2048);
node_pool_key!(NODE6_HUGEPAGES_1048576KB, 6, 1048576);
node_pool_key!(NODE7_HUGEPAGES_2048KB, 7, 2048);
node_pool_key!(NODE7_HUGEPAGES_1048576KB, 7, 1048576);

/// The node pool keys, node by node, 2 MiB then 1 GiB.
static NODE_POOL_KEYS: [&Key; 16] = [
    &NODE0_HUGEPAGES_2048KB,
    &NODE0_HUGEPAGES_1048576KB,
    &NODE1_HUGEPAGES_2048KB,
    &NODE1_HUGEPAGES_1048576KB,
    &NODE2_HUGEPAGES_2048KB,
    &NODE2_HUGEPAGES_1048576KB,
    &NODE3_HUGEPAGES_2048KB,
    &NODE3_HUGEPAGES_1048576KB,
    &NODE4_HUGEPAGES_2048KB,
    &NODE4_HUGEPAGES_1048576KB,
    &NODE5_HUGEPAGES_2048KB,
    &NODE5_HUGEPAGES_1048576KB,
    &NODE6_HUGEPAGES_2048KB,
    &NODE6_HUGEPAGES_1048576KB,
    &NODE7_HUGEPAGES_2048KB,
    &NODE7_HUGEPAGES_1048576KB,
];

/// Sets node `NODE`'s `MPOL_WEIGHTED_INTERLEAVE` weight; 0 brings back the default (1),
/// which the key then holds, as Linux's file reads back.
fn set_node_weight<const NODE: u32>(v: u64) -> SysResult<u64> {
    let weight = u8::try_from(v).map_err(|_| errno::Errno::EINVAL)?;
    mm::aspace::set_interleave_weight(NodeId(NODE), weight)
        .map(u64::from)
        .map_err(|_| errno::Errno::EINVAL)
}

/// A node's weight key: `mm.mempolicy.weighted_interleave.nodeN`.
macro_rules! node_weight_key {
    ($name:ident, $node:literal) => {
        #[doc = concat!("Node ", $node, "'s weight in weighted interleaving.")]
        pub static $name: Key = key(
            concat!("mm.mempolicy.weighted_interleave.node", $node),
            &[concat!(
                "/sys/kernel/mm/mempolicy/weighted_interleave/node",
                $node
            )],
            KeyKind::Int { min: 0, max: 255 },
            1,
            set_node_weight::<$node>,
        );
    };
}

node_weight_key!(NODE0_INTERLEAVE_WEIGHT, 0);
node_weight_key!(NODE1_INTERLEAVE_WEIGHT, 1);
node_weight_key!(NODE2_INTERLEAVE_WEIGHT, 2);
node_weight_key!(NODE3_INTERLEAVE_WEIGHT, 3);
node_weight_key!(NODE4_INTERLEAVE_WEIGHT, 4);
node_weight_key!(NODE5_INTERLEAVE_WEIGHT, 5);
node_weight_key!(NODE6_INTERLEAVE_WEIGHT, 6);
node_weight_key!(NODE7_INTERLEAVE_WEIGHT, 7);

/// The weighted-interleave weight keys, node by node.
static NODE_WEIGHT_KEYS: [&Key; 8] = [
    &NODE0_INTERLEAVE_WEIGHT,
    &NODE1_INTERLEAVE_WEIGHT,
    &NODE2_INTERLEAVE_WEIGHT,
    &NODE3_INTERLEAVE_WEIGHT,
    &NODE4_INTERLEAVE_WEIGHT,
    &NODE5_INTERLEAVE_WEIGHT,
    &NODE6_INTERLEAVE_WEIGHT,
    &NODE7_INTERLEAVE_WEIGHT,
];
