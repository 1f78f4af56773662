//! Tests of the repository as a whole, kept out of the published crates because they read
//! files only the repository has: the committed fuzz corpus (`tests/fuzz_corpus.rs`) and the
//! root README's example (a doc test here).
#![warn(missing_docs)]

/// The root README's example, compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct WorkspaceReadmeDoctests;
