//! Every integration test of `burn-int8-cli`: the tests that run the `burn-int8` binary, one
//! module per file beside this one, compiled as ONE test binary (`autotests = false` and one
//! `[[test]]` in Cargo.toml). Run one file's tests with
//! `cargo test --release -p burn-int8-cli --test integration preset_saves::`.

// The workspace's shared test helpers, by path (as crates/gemma3/tests/main.rs does).
#[path = "../../../tests/common/mod.rs"]
#[macro_use]
mod common;
#[path = "../../gemma3/tests/gemma3_common/mod.rs"]
mod gemma3_common;

mod gemma3_bad_input;
mod preset_saves;
mod real_checkpoint;
