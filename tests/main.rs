//! Every integration test of `burn-int8`, one module per file beside this one, compiled as ONE
//! test binary (`autotests = false` and one `[[test]]` in Cargo.toml). Each file of `tests/` used
//! to be a binary of its own, and each re-instantiated Burn's generic code for every backend and
//! linked it again: one binary compiles in a fraction of the time. Run one file's tests with
//! `cargo test --release --test integration gpu_kernels::`.

// `#[macro_use]`: the backend loops (`for_each_backend!`) are in scope in every module below.
#[macro_use]
extern crate burn_int8_testkit;

/// The workspace's shared test helpers (`crates/testkit`), under the name the modules use.
mod common {
    pub use burn_int8_testkit::*;
}

mod burn_examples;
mod conv_kernels;
mod finetune;
mod formats;
mod gpu_kernels;
mod gradients;
mod keras_parity;
mod kernels;
mod layers;
mod light_dependencies;
mod nn_rnn;
mod nn_transformer;
mod pool_kernels;
mod quantize_report;
mod real_models;
mod roundtrip;
mod user_model;
