//! Every integration test of the GGUF reader, one module per file beside this one, compiled as
//! ONE test binary (`autotests = false` and one `[[test]]` in Cargo.toml).

mod common;

mod dequant_reference;
mod malformed;
mod real_file;
mod writer;
