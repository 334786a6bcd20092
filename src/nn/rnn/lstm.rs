//! `Lstm` and `BiLstm`: Burn's `nn::Lstm` and `nn::BiLstm` with swappable float-or-int8 gate
//! linears. The forward passes are Burn's, op for op; `From` converts a Burn module.

use burn::config::Config;
use burn::module::{Initializer, Module};
use burn::nn;
use burn::nn::activation::{Activation, ActivationConfig};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::GateController;
use crate::Quantize;

/// Burn's LSTM state (cell and hidden), shared with `burn::nn` so states interoperate.
pub use burn::nn::LstmState;

/// Configuration to create a [Lstm](Lstm) module using the [init function](LstmConfig::init).
#[derive(Config, Debug)]
pub struct LstmConfig {
    /// The size of the input features.
    pub d_input: usize,
    /// The size of the hidden state.
    pub d_hidden: usize,
    /// If a bias should be applied during the Lstm transformation.
    pub bias: bool,
    /// Lstm initializer
    #[config(default = "Initializer::XavierNormal{gain:1.0}")]
    pub initializer: Initializer,
    /// If true, the input tensor is expected to be `[batch_size, seq_length, input_size]`.
    /// If false, the input tensor is expected to be `[seq_length, batch_size, input_size]`.
    #[config(default = true)]
    pub batch_first: bool,
    /// If true, process the sequence in reverse order.
    /// This is useful for implementing reverse-direction LSTMs (e.g., ONNX reverse direction).
    #[config(default = false)]
    pub reverse: bool,
    /// Optional cell state clip threshold. If provided, cell state values are clipped
    /// to the range `[-clip, +clip]` after each timestep. This can help prevent
    /// exploding values during inference.
    pub clip: Option<f64>,
    /// If true, couples the input and forget gates: `f_t = 1 - i_t`.
    /// This reduces the number of parameters and is based on GRU-style simplification.
    #[config(default = false)]
    pub input_forget: bool,
    /// Activation function for the input, forget, and output gates.
    /// Default is Sigmoid, which is standard for LSTM gates.
    #[config(default = "ActivationConfig::Sigmoid")]
    pub gate_activation: ActivationConfig,
    /// Activation function for the cell gate (candidate cell state).
    /// Default is Tanh, which is standard for LSTM.
    #[config(default = "ActivationConfig::Tanh")]
    pub cell_activation: ActivationConfig,
    /// Activation function applied to the cell state before computing hidden output.
    /// Default is Tanh, which is standard for LSTM.
    #[config(default = "ActivationConfig::Tanh")]
    pub hidden_activation: ActivationConfig,
}

/// Burn's unidirectional, stateless LSTM, whose eight gate linears can be int8.
///
/// Should be created with [LstmConfig], or converted from a Burn `nn::Lstm` with `From`.
#[derive(Module, Debug, Quantize)]
pub struct Lstm<B: Backend> {
    /// The input gate regulates which information to update and store in the cell state at each time step.
    pub input_gate: GateController<B>,
    /// The forget gate is used to control which information to discard or keep in the memory cell at each time step.
    /// Note: When `input_forget` is true, this gate is not used (forget = 1 - input).
    pub forget_gate: GateController<B>,
    /// The output gate determines which information from the cell state to output at each time step.
    pub output_gate: GateController<B>,
    /// The cell gate is used to compute the cell state that stores and carries information through time.
    pub cell_gate: GateController<B>,
    /// The hidden state of the LSTM.
    pub d_hidden: usize,
    /// If true, input is `[batch_size, seq_length, input_size]`.
    /// If false, input is `[seq_length, batch_size, input_size]`.
    pub batch_first: bool,
    /// If true, process the sequence in reverse order.
    pub reverse: bool,
    /// Optional cell state clip threshold.
    pub clip: Option<f64>,
    /// If true, couples input and forget gates: f_t = 1 - i_t.
    pub input_forget: bool,
    /// Activation function for gates (input, forget, output). Stays float.
    #[quantize(skip)]
    pub gate_activation: Activation<B>,
    /// Activation function for cell gate (candidate cell state). Stays float.
    #[quantize(skip)]
    pub cell_activation: Activation<B>,
    /// Activation function for hidden output. Stays float.
    #[quantize(skip)]
    pub hidden_activation: Activation<B>,
}

impl LstmConfig {
    /// Initialize a new [lstm](Lstm) module: Burn's own initialisation, then converted.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Lstm<B> {
        self.to_burn().init(device).into()
    }

    /// The equivalent `burn::nn::LstmConfig`.
    fn to_burn(&self) -> nn::LstmConfig {
        nn::LstmConfig {
            d_input: self.d_input,
            d_hidden: self.d_hidden,
            bias: self.bias,
            initializer: self.initializer.clone(),
            batch_first: self.batch_first,
            reverse: self.reverse,
            clip: self.clip,
            input_forget: self.input_forget,
            gate_activation: self.gate_activation.clone(),
            cell_activation: self.cell_activation.clone(),
            hidden_activation: self.hidden_activation.clone(),
        }
    }
}

impl<B: Backend> From<nn::Lstm<B>> for Lstm<B> {
    fn from(lstm: nn::Lstm<B>) -> Self {
        Self {
            input_gate: lstm.input_gate.into(),
            forget_gate: lstm.forget_gate.into(),
            output_gate: lstm.output_gate.into(),
            cell_gate: lstm.cell_gate.into(),
            d_hidden: lstm.d_hidden,
            batch_first: lstm.batch_first,
            reverse: lstm.reverse,
            clip: lstm.clip,
            input_forget: lstm.input_forget,
            gate_activation: lstm.gate_activation,
            cell_activation: lstm.cell_activation,
            hidden_activation: lstm.hidden_activation,
        }
    }
}

impl<B: Backend> Lstm<B> {
    /// Applies the forward pass on the input tensor, as Burn's `nn::Lstm::forward`.
    ///
    /// - batched_input: `[batch_size, sequence_length, input_size]` if `batch_first` (default),
    ///   else `[sequence_length, batch_size, input_size]`.
    /// - state: optional initial cell and hidden states, each `[batch_size, hidden_size]`;
    ///   zeros when `None`.
    ///
    /// Returns the hidden state of every step (`[batch_size, sequence_length, hidden_size]`,
    /// or sequence first when not `batch_first`) and the final state.
    pub fn forward(
        &self,
        batched_input: Tensor<B, 3>,
        state: Option<LstmState<B, 2>>,
    ) -> (Tensor<B, 3>, LstmState<B, 2>) {
        let batched_input = if self.batch_first {
            batched_input
        } else {
            batched_input.swap_dims(0, 1)
        };

        let device = batched_input.device();
        let [batch_size, seq_length, _] = batched_input.dims();

        let (output, state) = if self.reverse {
            self.forward_iter(
                batched_input.iter_dim(1).rev().zip((0..seq_length).rev()),
                state,
                batch_size,
                seq_length,
                &device,
            )
        } else {
            self.forward_iter(
                batched_input.iter_dim(1).zip(0..seq_length),
                state,
                batch_size,
                seq_length,
                &device,
            )
        };

        let output = if self.batch_first {
            output
        } else {
            output.swap_dims(0, 1)
        };

        (output, state)
    }

    fn forward_iter<I: Iterator<Item = (Tensor<B, 3>, usize)>>(
        &self,
        input_timestep_iter: I,
        state: Option<LstmState<B, 2>>,
        batch_size: usize,
        seq_length: usize,
        device: &B::Device,
    ) -> (Tensor<B, 3>, LstmState<B, 2>) {
        let mut batched_hidden_state =
            Tensor::empty([batch_size, seq_length, self.d_hidden], device);

        let (mut cell_state, mut hidden_state) = match state {
            Some(state) => (state.cell, state.hidden),
            None => (
                Tensor::zeros([batch_size, self.d_hidden], device),
                Tensor::zeros([batch_size, self.d_hidden], device),
            ),
        };

        for (input_t, t) in input_timestep_iter {
            let input_t = input_t.squeeze_dim(1);

            let biased_ig_input_sum = self
                .input_gate
                .gate_product(input_t.clone(), hidden_state.clone());
            let input_values = self.gate_activation.forward(biased_ig_input_sum);

            let forget_values = if self.input_forget {
                input_values.clone().neg().add_scalar(1.0)
            } else {
                let biased_fg_input_sum = self
                    .forget_gate
                    .gate_product(input_t.clone(), hidden_state.clone());
                self.gate_activation.forward(biased_fg_input_sum)
            };

            let biased_og_input_sum = self
                .output_gate
                .gate_product(input_t.clone(), hidden_state.clone());
            let output_values = self.gate_activation.forward(biased_og_input_sum);

            let biased_cg_input_sum = self
                .cell_gate
                .gate_product(input_t.clone(), hidden_state.clone());
            let candidate_cell_values = self.cell_activation.forward(biased_cg_input_sum);

            cell_state = forget_values * cell_state.clone() + input_values * candidate_cell_values;

            if let Some(clip) = self.clip {
                cell_state = cell_state.clamp(-clip, clip);
            }

            hidden_state = output_values * self.hidden_activation.forward(cell_state.clone());

            let unsqueezed_hidden_state = hidden_state.clone().unsqueeze_dim(1);

            batched_hidden_state = batched_hidden_state.slice_assign(
                [0..batch_size, t..(t + 1), 0..self.d_hidden],
                unsqueezed_hidden_state.clone(),
            );
        }

        (
            batched_hidden_state,
            LstmState::new(cell_state, hidden_state),
        )
    }
}

/// Configuration to create a [BiLstm](BiLstm) module using the [init function](BiLstmConfig::init).
#[derive(Config, Debug)]
pub struct BiLstmConfig {
    /// The size of the input features.
    pub d_input: usize,
    /// The size of the hidden state.
    pub d_hidden: usize,
    /// If a bias should be applied during the BiLstm transformation.
    pub bias: bool,
    /// BiLstm initializer
    #[config(default = "Initializer::XavierNormal{gain:1.0}")]
    pub initializer: Initializer,
    /// If true, the input tensor is expected to be `[batch_size, seq_length, input_size]`.
    /// If false, the input tensor is expected to be `[seq_length, batch_size, input_size]`.
    #[config(default = true)]
    pub batch_first: bool,
    /// Optional cell state clip threshold.
    pub clip: Option<f64>,
    /// If true, couples the input and forget gates.
    #[config(default = false)]
    pub input_forget: bool,
    /// Activation function for the input, forget, and output gates.
    #[config(default = "ActivationConfig::Sigmoid")]
    pub gate_activation: ActivationConfig,
    /// Activation function for the cell gate (candidate cell state).
    #[config(default = "ActivationConfig::Tanh")]
    pub cell_activation: ActivationConfig,
    /// Activation function applied to the cell state before computing hidden output.
    #[config(default = "ActivationConfig::Tanh")]
    pub hidden_activation: ActivationConfig,
}

/// Burn's bidirectional LSTM, whose sixteen gate linears can be int8.
///
/// Should be created with [BiLstmConfig], or converted from a Burn `nn::BiLstm` with `From`.
#[derive(Module, Debug, Quantize)]
pub struct BiLstm<B: Backend> {
    /// LSTM for the forward direction.
    pub forward: Lstm<B>,
    /// LSTM for the reverse direction.
    pub reverse: Lstm<B>,
    /// The size of the hidden state.
    pub d_hidden: usize,
    /// If true, input is `[batch_size, seq_length, input_size]`.
    /// If false, input is `[seq_length, batch_size, input_size]`.
    pub batch_first: bool,
}

impl BiLstmConfig {
    /// Initialize a new [Bidirectional LSTM](BiLstm) module: Burn's own initialisation, then
    /// converted.
    pub fn init<B: Backend>(&self, device: &B::Device) -> BiLstm<B> {
        self.to_burn().init(device).into()
    }

    /// The equivalent `burn::nn::BiLstmConfig`.
    fn to_burn(&self) -> nn::BiLstmConfig {
        nn::BiLstmConfig {
            d_input: self.d_input,
            d_hidden: self.d_hidden,
            bias: self.bias,
            initializer: self.initializer.clone(),
            batch_first: self.batch_first,
            clip: self.clip,
            input_forget: self.input_forget,
            gate_activation: self.gate_activation.clone(),
            cell_activation: self.cell_activation.clone(),
            hidden_activation: self.hidden_activation.clone(),
        }
    }
}

impl<B: Backend> From<nn::BiLstm<B>> for BiLstm<B> {
    fn from(lstm: nn::BiLstm<B>) -> Self {
        Self {
            forward: lstm.forward.into(),
            reverse: lstm.reverse.into(),
            d_hidden: lstm.d_hidden,
            batch_first: lstm.batch_first,
        }
    }
}

impl<B: Backend> BiLstm<B> {
    /// Applies the forward pass on the input tensor, as Burn's `nn::BiLstm::forward`.
    ///
    /// - batched_input: `[batch_size, sequence_length, input_size]` if `batch_first` (default),
    ///   else `[sequence_length, batch_size, input_size]`.
    /// - state: optional initial cell and hidden states, each `[2, batch_size, hidden_size]`
    ///   (forward direction first); zeros when `None`.
    ///
    /// Returns both directions' hidden states concatenated on the last axis
    /// (`[batch_size, sequence_length, hidden_size * 2]`, or sequence first when not
    /// `batch_first`) and the final states stacked, each `[2, batch_size, hidden_size]`.
    pub fn forward(
        &self,
        batched_input: Tensor<B, 3>,
        state: Option<LstmState<B, 3>>,
    ) -> (Tensor<B, 3>, LstmState<B, 3>) {
        let batched_input = if self.batch_first {
            batched_input
        } else {
            batched_input.swap_dims(0, 1)
        };

        let device = batched_input.clone().device();
        let [batch_size, seq_length, _] = batched_input.shape().dims();

        let [init_state_forward, init_state_reverse] = match state {
            Some(state) => {
                let cell_state_forward = state
                    .cell
                    .clone()
                    .slice([0..1, 0..batch_size, 0..self.d_hidden])
                    .squeeze_dim(0);
                let hidden_state_forward = state
                    .hidden
                    .clone()
                    .slice([0..1, 0..batch_size, 0..self.d_hidden])
                    .squeeze_dim(0);
                let cell_state_reverse = state
                    .cell
                    .slice([1..2, 0..batch_size, 0..self.d_hidden])
                    .squeeze_dim(0);
                let hidden_state_reverse = state
                    .hidden
                    .slice([1..2, 0..batch_size, 0..self.d_hidden])
                    .squeeze_dim(0);

                [
                    Some(LstmState::new(cell_state_forward, hidden_state_forward)),
                    Some(LstmState::new(cell_state_reverse, hidden_state_reverse)),
                ]
            }
            None => [None, None],
        };

        let (batched_hidden_state_forward, final_state_forward) = self
            .forward
            .forward(batched_input.clone(), init_state_forward);

        let (batched_hidden_state_reverse, final_state_reverse) = self.reverse.forward_iter(
            batched_input.iter_dim(1).rev().zip((0..seq_length).rev()),
            init_state_reverse,
            batch_size,
            seq_length,
            &device,
        );

        let output = Tensor::cat(
            [batched_hidden_state_forward, batched_hidden_state_reverse].to_vec(),
            2,
        );

        let output = if self.batch_first {
            output
        } else {
            output.swap_dims(0, 1)
        };

        let state = LstmState::new(
            Tensor::stack(
                [final_state_forward.cell, final_state_reverse.cell].to_vec(),
                0,
            ),
            Tensor::stack(
                [final_state_forward.hidden, final_state_reverse.hidden].to_vec(),
                0,
            ),
        );

        (output, state)
    }
}

crate::layers::config_conversions::config_conversions!(
    LstmConfig,
    nn::LstmConfig,
    [
        d_input,
        d_hidden,
        bias,
        initializer,
        batch_first,
        reverse,
        clip,
        input_forget,
        gate_activation,
        cell_activation,
        hidden_activation
    ]
);

crate::layers::config_conversions::config_conversions!(
    BiLstmConfig,
    nn::BiLstmConfig,
    [
        d_input,
        d_hidden,
        bias,
        initializer,
        batch_first,
        clip,
        input_forget,
        gate_activation,
        cell_activation,
        hidden_activation
    ]
);
