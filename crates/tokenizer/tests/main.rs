//! Every integration test of the tokenizer, one module per file beside this one, compiled as ONE
//! test binary (`autotests = false` and one `[[test]]` in Cargo.toml).

// Where the real Gemma 3 vocabulary is (shared by `gemma3` and `token_ids`).
use burn_int8_testkit::checkpoint;
mod gemma3;
mod synthetic;
mod token_ids;
