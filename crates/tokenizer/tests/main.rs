//! Every integration test of the tokenizer, one module per file beside this one, compiled as ONE
//! test binary (`autotests = false` and one `[[test]]` in Cargo.toml).

mod gemma3;
mod synthetic;
mod token_ids;
