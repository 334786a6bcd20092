//! Every integration test of `burn-int8-gemma3`, one module per file beside this one, compiled
//! as ONE test binary (`autotests = false` and one `[[test]]` in Cargo.toml), so Burn's generic
//! code is instantiated and linked once, not once per file. Run one file's tests with
//! `cargo test --release -p burn-int8-gemma3 --test integration preset_saves::`.

/// The workspace's shared test helpers (`crates/testkit`), under the name the modules use.
mod common {
    pub use burn_int8_testkit::*;
}
mod gemma3_common;

mod config_validation;
mod gemma3_bad_input;
mod gemma3_int8;
mod gemma3_real;
mod gguf_q8_0;
mod light_dependencies;
mod mutation_corpus;
mod preset_saves;
mod real_gguf_corruption;
