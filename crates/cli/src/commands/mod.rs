//! One module per `burn-int8 gemma3` command: its arguments and what it runs.

pub mod bench;
pub mod eval;
pub mod export_gguf;
pub mod export_hf;
pub mod generate;
pub mod logits;
pub mod save;
