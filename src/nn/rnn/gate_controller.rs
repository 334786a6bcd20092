//! `GateController`: Burn's `nn::GateController` (one gate of an LSTM or GRU cell) with
//! swappable float-or-int8 [`Linear`] layers.

use burn::module::{Initializer, Module};
use burn::nn;
use burn::tensor::{Tensor, backend::Backend};

use crate::{Linear, Quantize};

/// A gate of an LSTM or GRU cell: two linear transformations, one of the input and one of the
/// hidden state, whose results are used to compute the gate's output.
#[derive(Module, Debug, Quantize)]
pub struct GateController<B: Backend> {
    /// Represents the affine transformation applied to input vector
    pub input_transform: Linear<B>,
    /// Represents the affine transformation applied to the hidden state
    pub hidden_transform: Linear<B>,
}

impl<B: Backend> GateController<B> {
    /// Initialize a new [gate_controller](GateController) module (float), exactly as Burn does.
    pub fn new(
        d_input: usize,
        d_output: usize,
        bias: bool,
        initializer: Initializer,
        device: &B::Device,
    ) -> Self {
        nn::GateController::new(d_input, d_output, bias, initializer, device).into()
    }

    /// `Wx*X + Wh*H + b`: the input's and the hidden state's products (each with its bias, if
    /// any), summed.
    pub fn gate_product(&self, input: Tensor<B, 2>, hidden: Tensor<B, 2>) -> Tensor<B, 2> {
        self.input_transform.forward(input) + self.hidden_transform.forward(hidden)
    }
}

impl<B: Backend> From<nn::GateController<B>> for GateController<B> {
    fn from(gate: nn::GateController<B>) -> Self {
        Self {
            input_transform: gate.input_transform.into(),
            hidden_transform: gate.hidden_transform.into(),
        }
    }
}
