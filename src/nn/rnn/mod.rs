//! Burn's recurrent modules (LSTM, BiLSTM, GRU, BiGRU) with swappable float-or-int8 linears.

mod gate_controller;
mod gru;
mod lstm;

pub use gate_controller::{GateController, GateControllerRecord};
pub use gru::{BiGru, BiGruConfig, BiGruRecord, Gru, GruConfig, GruRecord};
pub use lstm::{BiLstm, BiLstmConfig, BiLstmRecord, Lstm, LstmConfig, LstmRecord, LstmState};
