//! Whole-allocator tests.
