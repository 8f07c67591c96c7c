//! The replay CLI as its users run it: the built binary against a seeded history in a
//! database of its own (and the AWS emulator for S3 exports).

mod access_log;
mod audit;
mod helpers;
mod judgment_index;
mod rebuild;
mod stream;
mod verifiable_log;

// The projection tests' command driver and drains, reused as they are: it issues a plausible
// mix of commands through the real event store. This crate uses part of it.
#[allow(dead_code)]
#[path = "../../../projections/tests/projections/support.rs"]
mod support;

// The judgment index tests' bag-of-words embedder: the live index's model before a rebuild.
#[allow(dead_code)]
#[path = "../../../projections/tests/judgment_index/words.rs"]
mod words;
