//! An HF `config.json` text: `Gemma3Config::from_hf_json`, validation, and the `to_hf_json` round trip.
//! The harness is `fuzz/harness.rs` (shared with `crates/gemma3/tests/mutation_corpus.rs`).
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _accepted = harness::gemma3_config(data);
});
