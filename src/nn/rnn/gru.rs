//! `Gru` and `BiGru`: Burn's `nn::Gru` and `nn::BiGru` with swappable float-or-int8 gate
//! linears. The forward passes are Burn's, op for op; `From` converts a Burn module.

use burn::config::Config;
use burn::module::{Initializer, Module};
use burn::nn;
use burn::nn::activation::{Activation, ActivationConfig};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::GateController;
use crate::Quantize;

/// Configuration to create a [gru](Gru) module using the [init function](GruConfig::init).
#[derive(Config, Debug)]
pub struct GruConfig {
    /// The size of the input features.
    pub d_input: usize,
    /// The size of the hidden state.
    pub d_hidden: usize,
    /// If a bias should be applied during the Gru transformation.
    pub bias: bool,
    /// If reset gate should be applied after weight multiplication.
    ///
    /// This configuration option controls how the reset gate is applied to the hidden state.
    /// * `true` - (Default) Match the initial arXiv version of the paper [Learning Phrase Representations using RNN Encoder-Decoder for
    ///   Statistical Machine Translation (v1)](https://arxiv.org/abs/1406.1078v1) and apply the reset gate after multiplication by
    ///   the weights. This matches the behavior of [PyTorch GRU](https://pytorch.org/docs/stable/generated/torch.nn.GRU.html#torch.nn.GRU).
    /// * `false` - Match the most recent revision of [Learning Phrase Representations using RNN Encoder-Decoder for Statistical Machine
    ///   Translation (v3)](https://arxiv.org/abs/1406.1078) and apply the reset gate before the weight multiplication.
    ///
    /// The differing implementations can give slightly different numerical results and have different efficiencies. For more
    /// motivation for why the `true` can be more efficient see [Optimizing RNNs with Differentiable Graphs](https://svail.github.io/diff_graphs).
    ///
    /// To set this field to `false` use [`with_reset_after`](`GruConfig::with_reset_after`).
    #[config(default = "true")]
    pub reset_after: bool,
    /// Gru initializer
    #[config(default = "Initializer::XavierNormal{gain:1.0}")]
    pub initializer: Initializer,
    /// Activation function for the update and reset gates.
    /// Default is Sigmoid, which is standard for GRU gates.
    #[config(default = "ActivationConfig::Sigmoid")]
    pub gate_activation: ActivationConfig,
    /// Activation function for the new/candidate gate.
    /// Default is Tanh, which is standard for GRU.
    #[config(default = "ActivationConfig::Tanh")]
    pub hidden_activation: ActivationConfig,
    /// Optional hidden state clip threshold. If provided, hidden state values are clipped
    /// to the range `[-clip, +clip]` after each timestep. This can help prevent
    /// exploding values during inference.
    pub clip: Option<f64>,
}

/// Burn's unidirectional, stateless GRU, whose six gate linears can be int8.
///
/// Should be created with [GruConfig], or converted from a Burn `nn::Gru` with `From`.
#[derive(Module, Debug, Quantize)]
pub struct Gru<B: Backend> {
    /// The update gate controller.
    pub update_gate: GateController<B>,
    /// The reset gate controller.
    pub reset_gate: GateController<B>,
    /// The new gate controller.
    pub new_gate: GateController<B>,
    /// The size of the hidden state.
    pub d_hidden: usize,
    /// If reset gate should be applied after weight multiplication.
    pub reset_after: bool,
    /// Activation function for gates (update, reset). Stays float.
    #[quantize(skip)]
    pub gate_activation: Activation<B>,
    /// Activation function for new/candidate gate. Stays float.
    #[quantize(skip)]
    pub hidden_activation: Activation<B>,
    /// Optional hidden state clip threshold.
    pub clip: Option<f64>,
}

impl GruConfig {
    /// Initialize a new [gru](Gru) module: Burn's own initialisation, then converted.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Gru<B> {
        self.to_burn().init(device).into()
    }

    /// The equivalent `burn::nn::GruConfig`.
    fn to_burn(&self) -> nn::GruConfig {
        nn::GruConfig {
            d_input: self.d_input,
            d_hidden: self.d_hidden,
            bias: self.bias,
            reset_after: self.reset_after,
            initializer: self.initializer.clone(),
            gate_activation: self.gate_activation.clone(),
            hidden_activation: self.hidden_activation.clone(),
            clip: self.clip,
        }
    }
}

impl<B: Backend> From<nn::Gru<B>> for Gru<B> {
    fn from(gru: nn::Gru<B>) -> Self {
        Self {
            update_gate: gru.update_gate.into(),
            reset_gate: gru.reset_gate.into(),
            new_gate: gru.new_gate.into(),
            d_hidden: gru.d_hidden,
            reset_after: gru.reset_after,
            gate_activation: gru.gate_activation,
            hidden_activation: gru.hidden_activation,
            clip: gru.clip,
        }
    }
}

impl<B: Backend> Gru<B> {
    /// Applies the forward pass on the input tensor, as Burn's `nn::Gru::forward`.
    ///
    /// - batched_input: `[batch_size, sequence_length, input_size]`.
    /// - state: optional initial hidden state `[batch_size, hidden_size]`; zeros when `None`.
    ///
    /// Returns the hidden state of every step, `[batch_size, sequence_length, hidden_size]`.
    pub fn forward(
        &self,
        batched_input: Tensor<B, 3>,
        state: Option<Tensor<B, 2>>,
    ) -> Tensor<B, 3> {
        let device = batched_input.device();
        let [batch_size, seq_length, _] = batched_input.shape().dims();

        self.forward_iter(
            batched_input.iter_dim(1).zip(0..seq_length),
            state,
            batch_size,
            seq_length,
            &device,
        )
        .0
    }

    /// The recurrence over `(input step, output index)` pairs, in the iterator's order; returns
    /// every step's hidden state `[batch_size, sequence_length, hidden_size]` and the last one.
    fn forward_iter<I: Iterator<Item = (Tensor<B, 3>, usize)>>(
        &self,
        input_timestep_iter: I,
        state: Option<Tensor<B, 2>>,
        batch_size: usize,
        seq_length: usize,
        device: &B::Device,
    ) -> (Tensor<B, 3>, Tensor<B, 2>) {
        let mut batched_hidden_state =
            Tensor::empty([batch_size, seq_length, self.d_hidden], device);

        let mut hidden_t = match state {
            Some(state) => state,
            None => Tensor::zeros([batch_size, self.d_hidden], device),
        };

        for (input_t, t) in input_timestep_iter {
            let input_t = input_t.squeeze_dim(1);

            // u(pdate)g(ate) tensors
            let biased_ug_input_sum =
                self.gate_product(&input_t, &hidden_t, None, &self.update_gate);
            let update_values = self.gate_activation.forward(biased_ug_input_sum);

            // r(eset)g(ate) tensors
            let biased_rg_input_sum =
                self.gate_product(&input_t, &hidden_t, None, &self.reset_gate);
            let reset_values = self.gate_activation.forward(biased_rg_input_sum);

            // n(ew)g(ate) tensor
            let biased_ng_input_sum = if self.reset_after {
                self.gate_product(&input_t, &hidden_t, Some(&reset_values), &self.new_gate)
            } else {
                let reset_t = hidden_t.clone().mul(reset_values);
                self.gate_product(&input_t, &reset_t, None, &self.new_gate)
            };
            let candidate_state = self.hidden_activation.forward(biased_ng_input_sum);

            // h_t = (1 - z_t) * g_t + z_t * h_{t-1}
            let one_minus_z = update_values.clone().neg().add_scalar(1.0);
            hidden_t = candidate_state.mul(one_minus_z) + update_values.mul(hidden_t);

            if let Some(clip) = self.clip {
                hidden_t = hidden_t.clamp(-clip, clip);
            }

            let unsqueezed_hidden_state = hidden_t.clone().unsqueeze_dim(1);

            batched_hidden_state = batched_hidden_state.slice_assign(
                [0..batch_size, t..(t + 1), 0..self.d_hidden],
                unsqueezed_hidden_state,
            );
        }

        (batched_hidden_state, hidden_t)
    }

    /// `Wx*X + r .* (Wh*H + b)` (or `Wx*X + Wh*H + b` without a reset), each product with its
    /// bias, if any.
    fn gate_product(
        &self,
        input: &Tensor<B, 2>,
        hidden: &Tensor<B, 2>,
        reset: Option<&Tensor<B, 2>>,
        gate: &GateController<B>,
    ) -> Tensor<B, 2> {
        let (input_transform, hidden_transform) = (&gate.input_transform, &gate.hidden_transform);
        let (input_part, hidden_part) = match (
            input_transform.is_quantized(),
            hidden_transform.is_quantized(),
        ) {
            // Burn's own arithmetic, op for op and in its order of parameter reads (which is
            // the order lazily initialised parameters are drawn in).
            (false, false) => {
                let input_product = input.clone().matmul(input_transform.weight.val());
                let hidden_product = hidden.clone().matmul(hidden_transform.weight.val());

                let input_part = match &input_transform.bias {
                    Some(bias) => input_product + bias.val().unsqueeze(),
                    None => input_product,
                };

                let hidden_part = match &hidden_transform.bias {
                    Some(bias) => hidden_product + bias.val().unsqueeze(),
                    None => hidden_product,
                };
                (input_part, hidden_part)
            }
            // With an int8 side: the same products through the swappable layers.
            _ => (
                input_transform.forward(input.clone()),
                hidden_transform.forward(hidden.clone()),
            ),
        };

        match reset {
            Some(r) => input_part + r.clone().mul(hidden_part),
            None => input_part + hidden_part,
        }
    }
}

/// Configuration to create a [BiGru](BiGru) module using the [init function](BiGruConfig::init).
#[derive(Config, Debug)]
pub struct BiGruConfig {
    /// The size of the input features.
    pub d_input: usize,
    /// The size of the hidden state.
    pub d_hidden: usize,
    /// If a bias should be applied during the BiGru transformation.
    pub bias: bool,
    /// If reset gate should be applied after weight multiplication.
    #[config(default = "true")]
    pub reset_after: bool,
    /// BiGru initializer
    #[config(default = "Initializer::XavierNormal{gain:1.0}")]
    pub initializer: Initializer,
    /// If true, the input tensor is expected to be `[batch_size, seq_length, input_size]`.
    /// If false, the input tensor is expected to be `[seq_length, batch_size, input_size]`.
    #[config(default = true)]
    pub batch_first: bool,
    /// Activation function for the update and reset gates.
    #[config(default = "ActivationConfig::Sigmoid")]
    pub gate_activation: ActivationConfig,
    /// Activation function for the new/candidate gate.
    #[config(default = "ActivationConfig::Tanh")]
    pub hidden_activation: ActivationConfig,
    /// Optional hidden state clip threshold.
    pub clip: Option<f64>,
}

/// Burn's bidirectional GRU, whose twelve gate linears can be int8.
///
/// Should be created with [BiGruConfig], or converted from a Burn `nn::BiGru` with `From`.
#[derive(Module, Debug, Quantize)]
pub struct BiGru<B: Backend> {
    /// GRU for the forward direction.
    pub forward: Gru<B>,
    /// GRU for the reverse direction.
    pub reverse: Gru<B>,
    /// The size of the hidden state.
    pub d_hidden: usize,
    /// If true, input is `[batch_size, seq_length, input_size]`.
    /// If false, input is `[seq_length, batch_size, input_size]`.
    pub batch_first: bool,
}

impl BiGruConfig {
    /// Initialize a new [Bidirectional GRU](BiGru) module: Burn's own initialisation, then
    /// converted.
    pub fn init<B: Backend>(&self, device: &B::Device) -> BiGru<B> {
        self.to_burn().init(device).into()
    }

    /// The equivalent `burn::nn::BiGruConfig`.
    fn to_burn(&self) -> nn::BiGruConfig {
        nn::BiGruConfig {
            d_input: self.d_input,
            d_hidden: self.d_hidden,
            bias: self.bias,
            reset_after: self.reset_after,
            initializer: self.initializer.clone(),
            batch_first: self.batch_first,
            gate_activation: self.gate_activation.clone(),
            hidden_activation: self.hidden_activation.clone(),
            clip: self.clip,
        }
    }
}

impl<B: Backend> From<nn::BiGru<B>> for BiGru<B> {
    fn from(gru: nn::BiGru<B>) -> Self {
        Self {
            forward: gru.forward.into(),
            reverse: gru.reverse.into(),
            d_hidden: gru.d_hidden,
            batch_first: gru.batch_first,
        }
    }
}

impl<B: Backend> BiGru<B> {
    /// Applies the forward pass on the input tensor, as Burn's `nn::BiGru::forward`.
    ///
    /// - batched_input: `[batch_size, sequence_length, input_size]` if `batch_first` (default),
    ///   else `[sequence_length, batch_size, input_size]`.
    /// - state: optional initial hidden state `[2, batch_size, hidden_size]` (forward direction
    ///   first); zeros when `None`.
    ///
    /// Returns both directions' hidden states concatenated on the last axis
    /// (`[batch_size, sequence_length, hidden_size * 2]`, or sequence first when not
    /// `batch_first`) and the final hidden states stacked, `[2, batch_size, hidden_size]`.
    pub fn forward(
        &self,
        batched_input: Tensor<B, 3>,
        state: Option<Tensor<B, 3>>,
    ) -> (Tensor<B, 3>, Tensor<B, 3>) {
        let batched_input = if self.batch_first {
            batched_input
        } else {
            batched_input.swap_dims(0, 1)
        };

        let device = batched_input.clone().device();
        let [batch_size, seq_length, _] = batched_input.shape().dims();

        let [init_state_forward, init_state_reverse] = match state {
            Some(state) => {
                let hidden_state_forward = state
                    .clone()
                    .slice([0..1, 0..batch_size, 0..self.d_hidden])
                    .squeeze_dim(0);
                let hidden_state_reverse = state
                    .slice([1..2, 0..batch_size, 0..self.d_hidden])
                    .squeeze_dim(0);

                [Some(hidden_state_forward), Some(hidden_state_reverse)]
            }
            None => [None, None],
        };

        let (batched_hidden_state_forward, final_state_forward) = self.forward.forward_iter(
            batched_input.clone().iter_dim(1).zip(0..seq_length),
            init_state_forward,
            batch_size,
            seq_length,
            &device,
        );

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

        let state = Tensor::stack([final_state_forward, final_state_reverse].to_vec(), 0);

        (output, state)
    }
}

crate::layers::config_conversions::config_conversions!(
    GruConfig,
    nn::GruConfig,
    [
        d_input,
        d_hidden,
        bias,
        reset_after,
        initializer,
        gate_activation,
        hidden_activation,
        clip
    ]
);

crate::layers::config_conversions::config_conversions!(
    BiGruConfig,
    nn::BiGruConfig,
    [
        d_input,
        d_hidden,
        bias,
        reset_after,
        initializer,
        batch_first,
        gate_activation,
        hidden_activation,
        clip
    ]
);
