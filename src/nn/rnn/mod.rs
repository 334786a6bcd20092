//! Burn's recurrent modules (LSTM, BiLSTM, GRU, BiGRU) with swappable float-or-int8 linears.

mod gate_controller;
mod gru;
mod lstm;

pub use gate_controller::GateController;
pub use gru::{BiGru, BiGruConfig, Gru, GruConfig};
pub use lstm::{BiLstm, BiLstmConfig, Lstm, LstmConfig, LstmState};
