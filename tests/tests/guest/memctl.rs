//! Process memory control in a booted guest (issue 17): the `memctl` program's mlock
//! family, `RLIMIT_MEMLOCK` against a restricted process, the mseal refusal table and
//! protection keys (PKRU per thread, SEGV_PKUERR, signal and exec resets).

use guest_tests::{userland_bin, Guest};

#[test]
fn memctl_locks_and_seals() {
    let out = Guest {
        nodes: 2,
        run: vec![userland_bin("memctl")],
        ..Guest::small()
    }
    .boot();
    out.expect_status(0);
    out.expect_line("memctl: running on Peios");
    for check in [
        "mlock.populates",
        "mlock.VmLck",
        "mlock.smaps_lo",
        "munlock.VmLck",
        "mlock2.onfault_nothing_resident",
        "mlock2.onfault_touched",
        "map_locked.resident",
        "fork.locks_not_inherited",
        "mlockall.current_future_onfault",
        "rlimit_memlock.unprivileged_refused",
        "rlimit_memlock.privilege_lifts_it",
        "mseal.smaps_sl",
        "sealed.munmap_overlapping.unchanged",
        "sealed.mprotect_overlapping.unchanged",
        "sealed.mremap_onto.unchanged",
        "sealed.map_fixed.unchanged",
        "sealed.madv_ro_kept",
        "sealed.fork_child_keeps_seal",
        "sealed.neighbours_free",
        "pkey_alloc.sets_rights",
        "smaps.ProtectionKey",
        "pkey.write_disabled_segv_pkuerr",
        "pkey.handler_default_pkru",
        "pkey.sigreturn_restores_pkru",
        "pkey.kernel_copy_obeys_pkru",
        "pkey.two_threads_two_pkru",
        "pkey.thread_refused_across_sleep",
        "pkey.exec_resets_pkru",
        "pkey_mprotect.sealed",
        "hostile.arguments_survive",
    ] {
        out.expect_line(&format!("memctl: check {check}: ok"));
    }
}

#[test]
fn numa_policy_and_migration_on_two_nodes() {
    let out = Guest {
        nodes: 2,
        run: vec![userland_bin("numa")],
        ..Guest::small()
    }
    .boot();
    out.expect_status(0);
    for check in [
        // /proc/self/numa_maps field by field (numa_maps_fields.rs).
        "maps.every_line_at_start",
        "maps.anon.untouched_header_only",
        "maps.anon.written",
        "maps.fork.parent_mapmax_2",
        "maps.fork.child_mapmax_2",
        "maps.memfd.parent_file_name",
        "maps.memfd.parent_dirty_mapmax_2",
        "maps.memfd.child_file_name",
        "maps.memfd.child_dirty_mapmax_2",
        "maps.tmpfs.file_name",
        "maps.tmpfs.read_pages_dirty",
        "maps.tmpfs.copy_is_anon",
        "maps.heap",
        "maps.stack",
        "maps.hugetlb.private_tags",
        "maps.hugetlb.private_counts",
        "maps.hugetlb.shared_tags",
        "maps.hugetlb.shared_counts",
        "maps.every_line_at_end",
        "get.bind1",
        "set.per_thread",
        "set.bind1_places_on_1",
        "mbind.bind1_every_page_on_1",
        "get.addr_node",
        "numa_maps.bind1",
        "mbind.interleave_alternates",
        "numa_maps.interleave",
        "thp.bind1_huge_on_1",
        "hugetlb.bind1_pages_on_1",
        "mbind.strict_misplaced_eio",
        "mbind.move_moves_all",
        "move_pages.moves_to_0",
        "move_pages.query_after_move",
        "move_pages.shared_eacces",
        "move_pages.move_all_moves_shared",
        "move_pages.move_all_child_sees_node_1",
        "memfd.mapped_once_moves",
        "memfd.shared_eacces",
        "memfd.move_all_moves",
        "memfd.numa_maps_n1",
        "memfd.migrate_pages_moves_shared",
        "memfd.child_sees_the_moves_and_bytes",
        "memfd.child_write_seen",
        "memfd.race.moved_under_the_writer",
        "memfd.race.nothing_lost",
        "ksm.merged",
        "ksm.numa_maps_anon_mapmax_2",
        "ksm.shared_eacces",
        "ksm.move_all_moves_both",
        "ksm.unmerged_numa_maps_no_mapmax",
        "migrate_pages.moves_while_writing",
        "migrate_pages.nothing_lost",
        "preferred_many.local_node_of_the_mask",
        "weighted.default_weight_1",
        "weighted.weight_reads_back",
        "weighted.three_pages_on_0_per_page_on_1",
        "numa_maps.weighted",
        "weighted.weight_256_einval",
        "weighted.unprivileged_write_refused",
        "weighted.zero_restores_1",
        "unprivileged.refused",
    ] {
        out.expect_line(&format!("numa: check {check}: ok"));
    }
}
