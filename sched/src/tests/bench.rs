//! Benchmark-ish: prints wake round-trip figures as `name=value`; asserts
//! only that the runs complete.

use std::time::Instant;

use super::smp::ping_pong;
use crate::host::HostMachine;
use crate::CpuId;

#[test]
fn bench_wake_round_trip() {
    const ROUNDS: u32 = 5_000;
    let m = HostMachine::boot(2);
    for (name, a, b) in [
        ("cross_cpu", CpuId(0), CpuId(1)),
        ("same_cpu", CpuId(0), CpuId(0)),
    ] {
        let start = Instant::now();
        ping_pong(&m, a, b, ROUNDS);
        let ns = start.elapsed().as_nanos() / u128::from(ROUNDS);
        std::println!("sched_{name}_wake_round_trip_ns={ns}");
    }
    let s = m.sched().stats(CpuId(1));
    std::println!(
        "sched_cross_cpu_kicks={} sched_cross_cpu_idles={}",
        s.kicks,
        s.idles
    );
    m.shutdown();
}
