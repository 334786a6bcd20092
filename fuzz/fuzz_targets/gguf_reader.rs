//! A GGUF file: header, every metadata getter, every small tensor dequantized.
//! The harness is `fuzz/harness.rs` (shared with `crates/gemma3/tests/mutation_corpus.rs`).
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _accepted = harness::gguf_reader(data);
});
