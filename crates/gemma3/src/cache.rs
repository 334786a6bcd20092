//! Key/value cache for generation. Global layers keep every key; local layers keep at most
//! their sliding window, so their memory does not grow with the context.

use burn::tensor::{Tensor, backend::Backend};

/// Buffer positions allocated at least, so short prompts do not regrow at every token.
const MIN_CAPACITY: usize = 64;

/// The cache of one layer: keys and values `[batch, kv_heads, capacity, head_dim]` buffers, of
/// which positions `first..len` are live.
///
/// New positions are written in place (`burn_int8::transformer_ops::slice_assign` into a buffer no other
/// handle shares; Burn's own `slice_assign` copies the buffer on flex), and the
/// buffer grows by doubling, so a decode step copies only its own key and value, not the
/// whole history as a concatenation would. Local layers forget what no later query can see by
/// moving `first`; the dead positions are dropped when the buffer next grows.
#[derive(Debug, Clone)]
pub struct LayerCache<B: Backend> {
    keys: Option<Tensor<B, 4>>,
    values: Option<Tensor<B, 4>>,
    first: usize,
    len: usize,
    /// Absolute position of buffer slot 0.
    origin: usize,
    window: Option<usize>,
}

impl<B: Backend> LayerCache<B> {
    pub fn new(window: Option<usize>) -> Self {
        Self {
            keys: None,
            values: None,
            first: 0,
            len: 0,
            origin: 0,
            window,
        }
    }

    /// Appends keys/values `[batch, kv_heads, new, head_dim]` at `position`; returns every
    /// key/value the new queries may need and the absolute position of the first one. Local
    /// layers then forget what no later query can see.
    pub fn append(
        &mut self,
        keys: Tensor<B, 4>,
        values: Tensor<B, 4>,
        position: usize,
    ) -> (Tensor<B, 4>, Tensor<B, 4>, usize) {
        let [batch, heads, new, head_dim] = keys.dims();
        let buffers = match (self.keys.take(), self.values.take()) {
            (Some(k), Some(v))
                if k.dims()[0] == batch && k.dims()[1] == heads && k.dims()[3] == head_dim =>
            {
                Some((k, v))
            }
            _ => {
                // First use: nothing cached yet, positions start at `position`.
                (self.first, self.len, self.origin) = (0, 0, position);
                None
            }
        };
        let (key_buffer, value_buffer) = match buffers {
            Some((k, v)) if self.len + new <= k.dims()[2] => (k, v),
            old => {
                // Grow (doubling), keeping only the live positions, at the front.
                let live = self.len - self.first;
                let capacity = ((live + new) * 2).max(MIN_CAPACITY);
                let device = keys.device();
                let mut grown_keys = Tensor::zeros([batch, heads, capacity, head_dim], &device);
                let mut grown_values = Tensor::zeros([batch, heads, capacity, head_dim], &device);
                if let Some((old_keys, old_values)) = old.filter(|_| live > 0) {
                    let from = [0..batch, 0..heads, self.first..self.len, 0..head_dim];
                    let to = [0..batch, 0..heads, 0..live, 0..head_dim];
                    grown_keys = burn_int8::transformer_ops::slice_assign(
                        grown_keys,
                        to.clone(),
                        old_keys.slice(from.clone()),
                    );
                    grown_values = burn_int8::transformer_ops::slice_assign(
                        grown_values,
                        to,
                        old_values.slice(from),
                    );
                }
                self.origin += self.first;
                (self.first, self.len) = (0, live);
                (grown_keys, grown_values)
            }
        };
        let slot = [0..batch, 0..heads, self.len..self.len + new, 0..head_dim];
        let key_buffer = burn_int8::transformer_ops::slice_assign(key_buffer, slot.clone(), keys);
        let value_buffer = burn_int8::transformer_ops::slice_assign(value_buffer, slot, values);
        self.len += new;

        let live = [0..batch, 0..heads, self.first..self.len, 0..head_dim];
        let visible = (
            key_buffer.clone().slice(live.clone()),
            value_buffer.clone().slice(live),
            self.origin + self.first,
        );
        if let Some(window) = self.window {
            // The next query sees itself and the `window - 1` keys before it.
            let keep = window.saturating_sub(1);
            self.first = self.first.max(self.len.saturating_sub(keep));
        }
        (self.keys, self.values) = (Some(key_buffer), Some(value_buffer));
        visible
    }

    /// Number of cached positions a later query may still see.
    pub fn len(&self) -> usize {
        self.len - self.first
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The caches of every layer, the next slot, and the left padding of each batch row.
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    layers: Vec<LayerCache<B>>,
    next_position: usize,
    pads: Vec<usize>,
}

impl<B: Backend> KvCache<B> {
    /// One layer cache per entry of `windows` (`None` for global layers).
    pub fn new(windows: Vec<Option<usize>>) -> Self {
        Self::with_padding(windows, Vec::new())
    }

    /// [`Self::new`] for a batch whose row `b` begins with `pads[b]` pad slots (batched
    /// generation over prompts of different lengths).
    pub fn with_padding(windows: Vec<Option<usize>>, pads: Vec<usize>) -> Self {
        Self {
            layers: windows.into_iter().map(LayerCache::new).collect(),
            next_position: 0,
            pads,
        }
    }

    /// Left-padding slots per batch row (empty: none).
    pub fn pads(&self) -> &[usize] {
        &self.pads
    }

    /// The next slot: the absolute position of an unpadded row's next token.
    pub fn next_position(&self) -> usize {
        self.next_position
    }

    pub fn layer(&mut self, index: usize) -> &mut LayerCache<B> {
        &mut self.layers[index]
    }

    pub fn layers(&self) -> &[LayerCache<B>] {
        &self.layers
    }

    pub(crate) fn advance(&mut self, positions: usize) {
        self.next_position += positions;
    }
}
