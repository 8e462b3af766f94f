//! The NUMA frame allocator in a booted guest (4 CPUs, 2 nodes): local-node allocation on
//! every CPU, zoneinfo counters that match, fallback by distance, and an allocation below
//! the min watermark that waits for a free instead of failing or spinning.

use guest_tests::Guest;

#[test]
fn frames_numa_local_fallback_and_wait() {
    let out = Guest {
        cpus: 4,
        nodes: 2,
        mem_mib: 2048,
        append: "test=frames".into(),
        ..Default::default()
    }
    .boot();
    assert_eq!(out.status, 0, "frames test failed:\n{}", out.log);
    out.expect_line("frames: node 0: test did 200000 allocs+frees; zoneinfo pgalloc +200000 pgfree +200000 numa_hit +200000");
    out.expect_line("frames: node 1: test did 200000 allocs+frees; zoneinfo pgalloc +200000 pgfree +200000 numa_hit +200000");
    out.expect_line("every frame from the CPU's own node");
    out.expect_line("fallback to node Some(1): 1001 frames");
    out.expect_line("frames: the waiting allocation completed after the free");
    out.expect_line("frames test passed");
}
