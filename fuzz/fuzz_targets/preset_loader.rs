//! A preset: `[u16 LE n][config.json][model.bpk]`, loaded without the checksum (`from_preset_with`), then a short generation.
//! The harness is `fuzz/harness.rs` (shared with `crates/gemma3/tests/mutation_corpus.rs`).
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _accepted = harness::preset_loader(data);
});
