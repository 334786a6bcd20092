//! The Gemma3 text model, top to bottom, as KerasHub and HF implement it.
//!
//! ```text
//! x   = embed(ids) * sqrt(hidden)
//! per block i (global when i % 6 == 5, else local with a 512-key sliding window):
//!   h   = x + post_attention_norm(attention(input_norm(x)))
//!   x   = h + post_feedforward_norm(down(gelu_tanh(gate(pre_feedforward_norm(h))) * up(...)))
//! out = norm(x);  logits = out @ embed^T   (tied, no soft-cap)
//! ```
//! Every projection and the embedding are swappable float/int8 layers from `burn-int8`, so
//! `model.quantize_int8()` turns the whole model to int8 in one call.

use std::cell::RefCell;

use burn::module::{Module, Param};
use burn::tensor::activation::softmax;
use burn::tensor::{Bool, Int, Tensor, TensorData, backend::Backend};
use burn_int8::{Embedding, Linear, Quantize};

use crate::cache::{KvCache, LayerCache};
use crate::config::Gemma3Config;
use crate::error::Gemma3Error;

/// RMSNorm with Gemma's `(1 + w)` scale, in f32: `x * rsqrt(mean(x²) + eps) * (1 + w)`.
#[derive(Module, Debug, Quantize)]
pub struct RmsNorm<B: Backend> {
    /// `w` as HF and KerasHub store it (zero at initialisation).
    pub weight: Param<Tensor<B, 1>>,
    pub eps: f64,
}

impl<B: Backend> RmsNorm<B> {
    /// One host pass per call on the CPU backends, Burn ops elsewhere (`burn_int8::transformer_ops`).
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        burn_int8::transformer_ops::rms_norm(x, self.weight.val(), 1.0, self.eps)
    }

    /// `residual + norm(x)`: the post-norms adding their branch back to the residual stream,
    /// one host pass on the CPU backends.
    pub fn forward_added_to<const D: usize>(
        &self,
        residual: Tensor<B, D>,
        x: Tensor<B, D>,
    ) -> Tensor<B, D> {
        burn_int8::transformer_ops::add_rms_norm(residual, x, self.weight.val(), 1.0, self.eps)
    }
}

/// Rotary position embedding (rotate-half): `1 / base^(2i / head_dim)` frequencies, in f32
/// as KerasHub computes them, with positions divided by `scaling`.
#[derive(Debug, Clone)]
pub struct Rope {
    inverse_frequencies: Vec<f32>,
    scaling: f32,
}

impl Rope {
    pub fn new(head_dim: usize, base: f64, scaling: f64) -> Self {
        let inverse_frequencies = (0..head_dim / 2)
            .map(|i| 1.0 / (base as f32).powf((2 * i) as f32 / head_dim as f32))
            .collect();
        Self {
            inverse_frequencies,
            scaling: scaling as f32,
        }
    }

    /// Tables for positions `start..start + len` and `heads` heads, `[1, len, heads, head_dim]`,
    /// the layout of the projections, so that applying them is a same-shape product (the fast
    /// path of CPU backends) rather than a broadcast or a strided walk.
    ///
    /// With left padding (`pads[b]` pad slots before row `b`'s first token) the tables are
    /// `[batch, len, heads, head_dim]` and slot `s` of row `b` is at position `s - pads[b]`, so
    /// every row sees the positions it would see alone. Pad slots get position 0 (their output
    /// is never used).
    pub fn tables<B: Backend>(
        &self,
        start: usize,
        len: usize,
        heads: usize,
        pads: &[usize],
        device: &B::Device,
    ) -> RopeTables<B> {
        let half = self.inverse_frequencies.len();
        let row_pads: &[usize] = if pads.iter().all(|&pad| pad == 0) {
            &[0]
        } else {
            pads
        };
        let size = row_pads.len() * len * heads * half * 2;
        let (mut cos, mut sin) = (Vec::with_capacity(size), Vec::with_capacity(size));
        for &pad in row_pads {
            for slot in start..start + len {
                let position = slot.saturating_sub(pad) as f32 / self.scaling;
                let angles = self
                    .inverse_frequencies
                    .iter()
                    .map(|&frequency| position * frequency);
                let (row_cos, row_sin): (Vec<f32>, Vec<f32>) =
                    angles.map(|angle| (angle.cos(), angle.sin())).unzip();
                for _ in 0..heads {
                    // Both halves share the angles; the first half of `sin` carries rotate-half's
                    // minus sign (exact: `(-a)·b = -(a·b)`).
                    cos.extend_from_slice(&row_cos);
                    cos.extend_from_slice(&row_cos);
                    sin.extend(row_sin.iter().map(|v| -v));
                    sin.extend_from_slice(&row_sin);
                }
            }
        }
        let shape = [row_pads.len(), len, heads, half * 2];
        RopeTables {
            cos: Tensor::from_data(TensorData::new(cos, shape), device),
            signed_sin: Tensor::from_data(TensorData::new(sin, shape), device),
        }
    }
}

/// RoPE tables for one head count, `[1, seq, heads, head_dim]`; the first half of `signed_sin`
/// is negated.
#[derive(Debug, Clone)]
pub struct RopeTables<B: Backend> {
    pub cos: Tensor<B, 4>,
    pub signed_sin: Tensor<B, 4>,
}

impl<B: Backend> RopeTables<B> {
    /// Rotates `x [batch, seq, heads, head_dim]`: `x·cos + rotate_half(x)·sin` with
    /// `rotate_half(x) = [-x₂, x₁]`, written as `[x₂, x₁]·signed_sin`.
    /// One host pass on the CPU backends, Burn ops elsewhere (`burn_int8::transformer_ops`).
    pub fn apply(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        burn_int8::transformer_ops::rope_rotate_half(x, self.cos.clone(), self.signed_sin.clone())
    }
}

/// What every layer of one attention kind (local or global) shares within one forward pass:
/// the RoPE tables of the new positions and the attention mask, each built once per pass
/// instead of once per layer.
#[derive(Debug)]
pub struct LayerInputs<B: Backend> {
    pub queries: RopeTables<B>,
    pub keys: RopeTables<B>,
    /// Left-padding slots per batch row (empty or all zero: no padding).
    pads: Vec<usize>,
    /// The last mask built, with what it was built for.
    mask: RefCell<Option<(MaskKey, Tensor<B, 4, Bool>)>>,
}

/// `(group, seq, start, keys, key_start, window)`: what decides a mask.
type MaskKey = (usize, usize, usize, usize, usize, Option<usize>);

impl<B: Backend> LayerInputs<B> {
    pub fn new(queries: RopeTables<B>, keys: RopeTables<B>, pads: Vec<usize>) -> Self {
        let pads = if pads.iter().all(|&pad| pad == 0) {
            Vec::new()
        } else {
            pads
        };
        Self {
            queries,
            keys,
            pads,
            mask: RefCell::new(None),
        }
    }

    /// True where a query may NOT see a key: the future, beyond `window` on local layers, and
    /// a row's pad slots (except a pad slot seeing itself, so that no row is all hidden and no
    /// NaN reaches the cache). Rows are (position, head in group) pairs, `group` heads per
    /// position; the shape is `[batch, 1, rows, keys]` with padding, else `[1, 1, rows, keys]`.
    fn mask(&self, key: MaskKey, device: &B::Device) -> Tensor<B, 4, Bool> {
        let (group, seq, start, keys, key_start, window) = key;
        if let Some((built_for, mask)) = self.mask.borrow().as_ref()
            && *built_for == key
        {
            return mask.clone();
        }
        let row_pads: &[usize] = if self.pads.is_empty() {
            &[0]
        } else {
            &self.pads
        };
        let mut hidden = Vec::with_capacity(row_pads.len() * group * seq * keys);
        for &pad in row_pads {
            for row in 0..group * seq {
                let query = start + row / group;
                for key in key_start..key_start + keys {
                    let future = key > query;
                    let outside = window.is_some_and(|window| query - key.min(query) >= window);
                    let padding = key < pad && key != query;
                    hidden.push(future || outside || padding);
                }
            }
        }
        let shape = [row_pads.len(), group * seq, keys];
        let mask = Tensor::<B, 3, Bool>::from_data(TensorData::new(hidden, shape), device)
            .unsqueeze_dim::<4>(1);
        *self.mask.borrow_mut() = Some((key, mask.clone()));
        mask
    }
}

/// Grouped-query self-attention with QK-norm and RoPE; local layers see a sliding window.
#[derive(Module, Debug, Quantize)]
pub struct Attention<B: Backend> {
    pub q_proj: Linear<B>,
    pub k_proj: Linear<B>,
    pub v_proj: Linear<B>,
    pub o_proj: Linear<B>,
    pub q_norm: RmsNorm<B>,
    pub k_norm: RmsNorm<B>,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub query_scale: f64,
    /// `Some(window)` on local layers.
    pub sliding_window: Option<usize>,
}

impl<B: Backend> Attention<B> {
    /// `x [batch, seq, hidden]` at absolute positions `start..`; appends to `cache`.
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        inputs: &LayerInputs<B>,
        cache: &mut LayerCache<B>,
        start: usize,
    ) -> Tensor<B, 3> {
        let [batch, seq, _] = x.dims();
        let (heads, kv_heads, head_dim) = (self.num_heads, self.num_kv_heads, self.head_dim);
        // Norms and RoPE run in the projections' own layout `[batch, seq, heads, head_dim]`:
        // contiguous, so no strided walks.
        let split = |t: Tensor<B, 3>, n: usize| t.reshape([batch, seq, n, head_dim]);
        // q, k and v read the same rows: quantized once for all three on the CPU backends.
        let [q, k, v] = Linear::forward_shared([&self.q_proj, &self.k_proj, &self.v_proj], x);
        let q = self.q_norm.forward(split(q, heads));
        let k = self.k_norm.forward(split(k, kv_heads));
        let v = split(v, kv_heads);
        let q = inputs.queries.apply(q).mul_scalar(self.query_scale);
        let k = inputs.keys.apply(k);

        let (k, v, key_start) = cache.append(k.swap_dims(1, 2), v.swap_dims(1, 2), start);
        let keys = k.dims()[2];

        // One new position and no padding: the cache holds only keys this query may see (the
        // past, and on local layers only the window), so no mask; one host pass on the CPU
        // backends (`burn_int8::transformer_ops`).
        if seq == 1 && inputs.pads.is_empty() {
            return self
                .o_proj
                .forward(burn_int8::transformer_ops::attend_unmasked(q, k, v));
        }
        // The query heads sharing a kv head become rows (position, head) of one matrix, so one
        // batched matmul serves each kv head (no repeated keys in memory); with one kv head
        // this is a plain reshape.
        let group = heads / kv_heads;
        let q = q
            .reshape([batch, seq, kv_heads, group * head_dim])
            .swap_dims(1, 2)
            .reshape([batch, kv_heads, seq * group, head_dim]);
        let scores = q.matmul(k.transpose());
        let (dims, device) = (scores.dims(), scores.device());
        let mask = inputs.mask(
            (group, seq, start, keys, key_start, self.sliding_window),
            &device,
        );
        let probabilities = softmax(scores.mask_fill(mask.expand(dims), f32::NEG_INFINITY), 3);
        let output = probabilities
            .matmul(v)
            .reshape([batch, kv_heads, seq, group * head_dim])
            .swap_dims(1, 2)
            .reshape([batch, seq, heads * head_dim]);
        self.o_proj.forward(output)
    }
}

/// GeGLU feed-forward: `down(gelu_tanh(gate(x)) * up(x))`.
#[derive(Module, Debug, Quantize)]
pub struct Mlp<B: Backend> {
    pub gate_proj: Linear<B>,
    pub up_proj: Linear<B>,
    pub down_proj: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    /// `gelu_tanh(gate) · up` is one host pass on the CPU backends (`burn_int8::transformer_ops`).
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [gate, up] = Linear::forward_shared([&self.gate_proj, &self.up_proj], x);
        self.down_proj
            .forward(burn_int8::transformer_ops::gelu_tanh_mul(gate, up))
    }
}

/// One transformer block.
#[derive(Module, Debug, Quantize)]
pub struct DecoderLayer<B: Backend> {
    pub input_layernorm: RmsNorm<B>,
    pub self_attn: Attention<B>,
    pub post_attention_layernorm: RmsNorm<B>,
    pub pre_feedforward_layernorm: RmsNorm<B>,
    pub mlp: Mlp<B>,
    pub post_feedforward_layernorm: RmsNorm<B>,
}

impl<B: Backend> DecoderLayer<B> {
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        inputs: &LayerInputs<B>,
        cache: &mut LayerCache<B>,
        start: usize,
    ) -> Tensor<B, 3> {
        let attention = self.self_attn.forward(
            self.input_layernorm.forward(x.clone()),
            inputs,
            cache,
            start,
        );
        let h = self.post_attention_layernorm.forward_added_to(x, attention);
        let feed_forward = self
            .mlp
            .forward(self.pre_feedforward_layernorm.forward(h.clone()));
        self.post_feedforward_layernorm
            .forward_added_to(h, feed_forward)
    }
}

/// The token embedding, split into vocabulary shards of at most [`MAX_SHARD_BYTES`] each
/// (lavapipe's storage-buffer limit is 128 MiB; one code path on every backend).
#[derive(Module, Debug, Quantize)]
pub struct ShardedEmbedding<B: Backend> {
    pub shards: Vec<Embedding<B>>,
}

/// Largest f32 shard of the embedding: lavapipe's `maxStorageBufferRange`.
pub const MAX_SHARD_BYTES: usize = 128 * 1024 * 1024;

impl<B: Backend> ShardedEmbedding<B> {
    /// Vocabulary rows per shard for a hidden size (sized for f32, so int8 shards are smaller).
    pub fn rows_per_shard(vocab: usize, hidden: usize) -> usize {
        // Saturating: `hidden * 4` must not wrap (to 0: a division by zero) for a hidden size
        // no validated config has.
        (MAX_SHARD_BYTES / hidden.saturating_mul(4).max(1)).clamp(1, vocab.max(1))
    }

    fn shard_rows(&self) -> Vec<usize> {
        self.shards
            .iter()
            .map(|shard| shard.weight_dims()[0])
            .collect()
    }

    pub fn vocab_size(&self) -> usize {
        self.shard_rows().iter().sum()
    }

    /// Looks `ids [batch, seq]` up across shards: each shard answers for its own rows. An id
    /// past the table would come out as a zero row (a forward pass cannot fail), so the library's
    /// entry points refuse such ids first ([`crate::generate::check_token_ids`]).
    pub fn forward(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let shard_rows = self.shard_rows();
        if let Some((shard, offset)) = Self::only_shard(&ids, &shard_rows) {
            let local = if offset == 0 {
                ids
            } else {
                ids.sub_scalar(offset as i64)
            };
            return self.shards[shard].forward(local);
        }
        let mut offset = 0;
        let mut output: Option<Tensor<B, 3>> = None;
        for (shard, rows) in self.shards.iter().zip(shard_rows) {
            let local = ids.clone().sub_scalar(offset as i64);
            let clamped = local.clone().clamp(0, rows as i64 - 1);
            let inside = local.equal(clamped.clone()).float().unsqueeze_dim::<3>(2);
            let part = shard.forward(clamped).mul(inside);
            output = Some(match output {
                None => part,
                Some(sum) => sum.add(part),
            });
            offset += rows;
        }
        output.expect("an embedding has at least one shard")
    }

    /// The shard (and its first row) holding every id, when one does: always for a decode step's
    /// one token, so a step looks up one shard instead of masking and summing all of them. The
    /// ids are read back to the host for this; they come from there, and are few.
    fn only_shard(ids: &Tensor<B, 2, Int>, shard_rows: &[usize]) -> Option<(usize, usize)> {
        let data = ids.to_data();
        let mut values = data.iter::<i64>();
        let first = values.next()?;
        let (low, high) = values.fold((first, first), |(low, high), id| {
            (low.min(id), high.max(id))
        });
        let mut offset = 0usize;
        for (shard, &rows) in shard_rows.iter().enumerate() {
            let end = offset.checked_add(rows)?;
            if low >= offset as i64 && high < end as i64 {
                return Some((shard, offset));
            }
            offset = end;
        }
        None
    }

    /// Tied logits `hidden @ E^T`, shard by shard.
    pub fn reverse<const D: usize>(&self, hidden: Tensor<B, D>) -> Tensor<B, D> {
        let parts = self
            .shards
            .iter()
            .map(|shard| shard.reverse(hidden.clone()))
            .collect();
        Tensor::cat(parts, D - 1)
    }
}

/// The Gemma3 causal language model.
#[derive(Module, Debug, Quantize)]
pub struct Gemma3<B: Backend> {
    pub embed_tokens: ShardedEmbedding<B>,
    pub layers: Vec<DecoderLayer<B>>,
    pub norm: RmsNorm<B>,
    pub config: Gemma3Config,
}

impl<B: Backend> Gemma3<B> {
    /// True when any weight is int8.
    pub fn is_quantized(&self) -> bool {
        self.embed_tokens.shards.iter().any(Embedding::is_quantized)
            || self
                .projections()
                .iter()
                .any(|(_, linear)| linear.is_quantized())
    }

    /// Every projection with its path in the model (`layers.3.mlp.down_proj`), in order.
    pub fn projections(&self) -> Vec<(String, &Linear<B>)> {
        let mut projections = Vec::with_capacity(7 * self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            let (attention, mlp) = (&layer.self_attn, &layer.mlp);
            for (name, linear) in [
                ("self_attn.q_proj", &attention.q_proj),
                ("self_attn.k_proj", &attention.k_proj),
                ("self_attn.v_proj", &attention.v_proj),
                ("self_attn.o_proj", &attention.o_proj),
                ("mlp.gate_proj", &mlp.gate_proj),
                ("mlp.up_proj", &mlp.up_proj),
                ("mlp.down_proj", &mlp.down_proj),
            ] {
                projections.push((format!("layers.{i}.{name}"), linear));
            }
        }
        projections
    }

    /// The int8 format of every int8 layer, by path (what a preset's config.json records).
    pub fn int8_formats(&self) -> std::collections::BTreeMap<String, burn_int8::Int8Format> {
        let shards = self
            .embed_tokens
            .shards
            .iter()
            .enumerate()
            .filter_map(|(j, shard)| {
                Some((
                    format!("embed_tokens.shards.{j}"),
                    shard.int8_weight()?.format(),
                ))
            });
        let projections = self
            .projections()
            .into_iter()
            .filter_map(|(path, linear)| Some((path, linear.int8_weight()?.format())));
        shards.chain(projections).collect()
    }

    /// The device the weights live on.
    pub fn device(&self) -> B::Device {
        // The weight's device without reading it (an int8 layer's float weight is no tensor).
        self.embed_tokens.shards[0].weight.lazy_device()
    }

    /// A cache for one sequence (or a batch of equal-length ones); local layers keep at most a
    /// window of keys.
    pub fn new_cache(&self) -> KvCache<B> {
        self.new_padded_cache(Vec::new())
    }

    /// A cache for a batch of left-padded sequences: row `b` starts with `pads[b]` pad slots,
    /// which no real token attends to, and its first real token is at position 0.
    pub fn new_padded_cache(&self, pads: Vec<usize>) -> KvCache<B> {
        let windows = (0..self.config.num_layers)
            .map(|i| (!self.config.is_global_layer(i)).then_some(self.config.sliding_window))
            .collect();
        KvCache::with_padding(windows, pads)
    }

    /// `embed(ids) * sqrt(hidden)`.
    pub fn embed(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let scale = (self.config.hidden_size as f32).sqrt();
        self.embed_tokens.forward(ids).mul_scalar(scale)
    }

    /// What local and global layers share in a pass over `len` slots from `start`, for rows
    /// left-padded by `pads` (empty: no padding).
    pub fn layer_inputs(
        &self,
        start: usize,
        len: usize,
        pads: &[usize],
        device: &B::Device,
    ) -> [LayerInputs<B>; 2] {
        let config = &self.config;
        let local = Rope::new(config.head_dim, config.rope_local_base, 1.0);
        let global = Rope::new(
            config.head_dim,
            config.rope_global_base,
            config.rope_global_scaling,
        );
        [local, global].map(|rope| {
            let queries = rope.tables(start, len, config.num_heads, pads, device);
            let keys = rope.tables(start, len, config.num_kv_heads, pads, device);
            LayerInputs::new(queries, keys, pads.to_vec())
        })
    }

    /// Runs the blocks over `ids [batch, seq]` continuing `cache`, returning the final-normed
    /// hidden states `[batch, seq, hidden]`.
    pub fn forward_hidden(&self, ids: Tensor<B, 2, Int>, cache: &mut KvCache<B>) -> Tensor<B, 3> {
        let [_, seq] = ids.dims();
        let start = cache.next_position();
        let [local, global] = self.layer_inputs(start, seq, cache.pads(), &ids.device());
        let mut x = self.embed(ids);
        for (i, layer) in self.layers.iter().enumerate() {
            let inputs = if self.config.is_global_layer(i) {
                &global
            } else {
                &local
            };
            x = layer.forward(x, inputs, cache.layer(i), start);
        }
        cache.advance(seq);
        self.norm.forward(x)
    }

    /// Logits `[batch, seq, vocab]` for every position. The ids must be rows of the embedding
    /// table and fit the context (an id past the table would read as a zero embedding): for ids
    /// from outside, [`Self::try_forward`] checks both.
    pub fn forward(&self, ids: Tensor<B, 2, Int>, cache: &mut KvCache<B>) -> Tensor<B, 3> {
        self.embed_tokens.reverse(self.forward_hidden(ids, cache))
    }

    /// [`Self::forward`] after checking `ids`: one outside the embedding table is
    /// [`Gemma3Error::TokenOutOfRange`] (a negative id reads as `u32::MAX`), and positions past
    /// `max_position_embeddings` are [`Gemma3Error::PromptTooLong`]. The ids are read back to
    /// the host for this.
    pub fn try_forward(
        &self,
        ids: Tensor<B, 2, Int>,
        cache: &mut KvCache<B>,
    ) -> Result<Tensor<B, 3>, Gemma3Error> {
        self.check_ids(&ids, cache)?;
        Ok(self.forward(ids, cache))
    }

    fn check_ids(&self, ids: &Tensor<B, 2, Int>, cache: &KvCache<B>) -> Result<(), Gemma3Error> {
        let [_, seq] = ids.dims();
        let limit = self.config.max_position_embeddings;
        let tokens = cache.next_position().saturating_add(seq);
        if tokens > limit {
            return Err(Gemma3Error::PromptTooLong {
                tokens,
                limit,
                why: "the model's context",
            });
        }
        // A negative id (or one past u32) becomes u32::MAX, past any validated vocabulary.
        let ids: Vec<u32> = ids
            .to_data()
            .iter::<i64>()
            .map(|id| u32::try_from(id).unwrap_or(u32::MAX))
            .collect();
        crate::generate::check_token_ids(self, &ids)
    }

    /// Where a forward pass over `ids` (one sequence, from a fresh cache) first stops being
    /// finite: `embed_tokens`, `layers.N`, `norm` or the output projection; `None` when every
    /// output is finite. It re-runs the pass with a check after each part, so callers check
    /// the logits first ([`all_finite`]) and call this only on failure.
    pub fn first_non_finite(&self, ids: &[u32]) -> Option<String> {
        let device = self.device();
        let mut cache = self.new_cache();
        let seq = ids.len();
        let [local, global] = self.layer_inputs(0, seq, cache.pads(), &device);
        let mut x = self.embed(crate::generate::token_tensor::<B>(ids, &device));
        if !all_finite(&x) {
            return Some("embed_tokens".into());
        }
        for (i, layer) in self.layers.iter().enumerate() {
            let inputs = if self.config.is_global_layer(i) {
                &global
            } else {
                &local
            };
            x = layer.forward(x, inputs, cache.layer(i), 0);
            if !all_finite(&x) {
                return Some(format!("layers.{i}"));
            }
        }
        let x = self.norm.forward(x);
        if !all_finite(&x) {
            return Some("norm".into());
        }
        if !all_finite(&self.embed_tokens.reverse(x)) {
            return Some("embed_tokens (the tied output projection)".into());
        }
        None
    }

    /// [`Gemma3Error::NonFiniteLogits`] for a pass over `ids` whose logits were not finite.
    pub fn non_finite_error(&self, ids: &[u32]) -> Gemma3Error {
        Gemma3Error::NonFiniteLogits {
            layer: self
                .first_non_finite(ids)
                .unwrap_or_else(|| "unknown (finite when re-run alone)".into()),
        }
    }

    /// Logits `[batch, vocab]` of the last position only (what generation needs).
    pub fn forward_last(&self, ids: Tensor<B, 2, Int>, cache: &mut KvCache<B>) -> Tensor<B, 2> {
        let hidden = self.forward_hidden(ids, cache);
        let [batch, seq, width] = hidden.dims();
        let last = hidden
            .slice([0..batch, seq - 1..seq, 0..width])
            .reshape([batch, width]);
        self.embed_tokens.reverse(last)
    }
}

/// True when every value of `x` is finite: `x - x` is NaN exactly where `x` is NaN or ±Inf.
/// One reduction and one read back of a single bool.
pub fn all_finite<B: Backend, const D: usize>(x: &Tensor<B, D>) -> bool {
    let any_bad = (x.clone() - x.clone()).is_nan().any().into_data();
    !any_bad.iter::<bool>().next().unwrap_or(false)
}
