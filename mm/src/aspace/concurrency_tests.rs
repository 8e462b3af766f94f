//! Concurrency tests.
