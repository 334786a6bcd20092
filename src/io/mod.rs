//! Records on disk: Burnpack files saved and loaded with int8 kept as 1 byte per weight.
//!
//! - [`store`]: atomic saving, and loading that checks the record before touching the model
//!   (re-exported as `burn_int8::store`).
//! - [`burnpack_header`]: reads a Burnpack record's tensor table (names, dtypes, shapes, byte
//!   ranges) without its data, and checks it against what a model holds.
//! - [`record`]: the record schema, i.e. how the tensors of a swappable layer and of an
//!   [`crate::Int8Weight`] are named in a record.
//! - [`atomic`]: atomic writes of files and whole directories (a temporary sibling renamed,
//!   or swapped, into place), used by [`store`], the Gemma3 presets and the CLI.

pub mod atomic;
pub mod burn_record;
pub mod burnpack_header;
pub mod record;
pub mod store;
