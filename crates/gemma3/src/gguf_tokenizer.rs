//! The tokenizer of a GGUF file: its SentencePiece vocabulary (`tokenizer.ggml.*`).

use burn_int8_gguf::GgufFile;
use burn_int8_tokenizer::{Tokenizer, Vocab};

use crate::error::{Gemma3Error, in_gguf};

/// Builds the tokenizer from `tokenizer.ggml.*` metadata (model `llama`: SentencePiece BPE
/// by scores with byte fallback).
pub fn tokenizer_from_gguf(file: &GgufFile) -> Result<Tokenizer, Gemma3Error> {
    let gguf = in_gguf(file);
    let model = file.get_str("tokenizer.ggml.model").map_err(&gguf)?;
    if model != "llama" {
        return Err(Gemma3Error::Config(format!(
            "tokenizer.ggml.model `{model}` is not supported (expected `llama`)"
        )));
    }
    let optional_id = |key: &str| file.get_u32(key).ok();
    let vocab = Vocab {
        tokens: file
            .get_string_array("tokenizer.ggml.tokens")
            .map_err(&gguf)?
            .to_vec(),
        scores: file
            .get_f32_array("tokenizer.ggml.scores")
            .map_err(&gguf)?
            .to_vec(),
        token_types: file
            .get_i32_array("tokenizer.ggml.token_type")
            .map_err(&gguf)?,
        bos_id: optional_id("tokenizer.ggml.bos_token_id").unwrap_or(2),
        eos_id: optional_id("tokenizer.ggml.eos_token_id").unwrap_or(1),
        unknown_id: optional_id("tokenizer.ggml.unknown_token_id"),
        padding_id: optional_id("tokenizer.ggml.padding_token_id"),
        add_bos: file
            .get_bool("tokenizer.ggml.add_bos_token")
            .unwrap_or(true),
        add_space_prefix: file
            .get_bool("tokenizer.ggml.add_space_prefix")
            .unwrap_or(false),
    };
    Ok(Tokenizer::from_vocab(vocab)?)
}
