//! Holds only benches/: `cargo bench -p mm-bench`.
