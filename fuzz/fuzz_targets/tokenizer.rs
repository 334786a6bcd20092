//! Mode byte, then a `tokenizer.vocab.json` (0), text for a fixed vocabulary (1) or a HF `tokenizer.json` (2).
//! The harness is `fuzz/harness.rs` (shared with `crates/gemma3/tests/mutation_corpus.rs`).
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _accepted = harness::tokenizer(data);
});
