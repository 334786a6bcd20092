pub use burn_int8_core::*;
