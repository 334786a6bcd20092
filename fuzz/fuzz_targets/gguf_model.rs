//! A GGUF Gemma3 checkpoint: loaded float and int8 (`load_model_with`), then a short generation.
//! The harness is `fuzz/harness.rs` (shared with `crates/gemma3/tests/mutation_corpus.rs`).
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _accepted = harness::gguf_model(data);
});
