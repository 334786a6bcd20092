//! Every integration test of `burn-int8-cli`: the tests that run the `burn-int8` binary, one
//! module per file beside this one, compiled as ONE test binary (`autotests = false` and one
//! `[[test]]` in Cargo.toml). Run one file's tests with
//! `cargo test --release -p burn-int8-cli --test integration preset_saves::`.

/// The workspace's shared test helpers (`crates/testkit`), under the name the modules use.
mod common {
    pub use burn_int8_testkit::*;
}
// Gemma3's own test helpers (a tiny model, one forward pass): they need `burn-int8-gemma3`'s
// types, which the light test kit does not depend on.
#[path = "../../gemma3/tests/gemma3_common/mod.rs"]
mod gemma3_common;

mod export_gguf;
mod gemma3_bad_input;
mod preset_saves;
mod real_checkpoint;
mod reliability;
mod terminal;
