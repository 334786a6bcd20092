//! Key/value cache for generation. Global layers keep every key; local layers keep at most
//! their sliding window, so their memory does not grow with the context.

use burn::tensor::{Tensor, backend::Backend};

/// The cache of one layer: keys and values `[batch, kv_heads, len, head_dim]`.
#[derive(Debug, Clone)]
pub struct LayerCache<B: Backend> {
    keys: Option<Tensor<B, 4>>,
    values: Option<Tensor<B, 4>>,
    /// Absolute position of the first cached key.
    start: usize,
    window: Option<usize>,
}

impl<B: Backend> LayerCache<B> {
    pub fn new(window: Option<usize>) -> Self {
        Self { keys: None, values: None, start: 0, window }
    }

    /// Appends keys/values at `position`; returns every key/value the new queries may need
    /// and the absolute position of the first one. Local layers then drop what no later
    /// query can see.
    pub fn append(&mut self, keys: Tensor<B, 4>, values: Tensor<B, 4>, position: usize) -> (Tensor<B, 4>, Tensor<B, 4>, usize) {
        let (all_keys, all_values, start) = match (self.keys.take(), self.values.take()) {
            (Some(old_keys), Some(old_values)) => (
                Tensor::cat(vec![old_keys, keys], 2),
                Tensor::cat(vec![old_values, values], 2),
                self.start,
            ),
            _ => (keys, values, position),
        };
        let len = all_keys.dims()[2];
        let keep_from = match self.window {
            // The next query sees itself and the `window - 1` keys before it.
            Some(window) if len > window - 1 => len - (window - 1),
            _ => 0,
        };
        if keep_from > 0 {
            let [batch, heads, _, head_dim] = all_keys.dims();
            let range = [0..batch, 0..heads, keep_from..len, 0..head_dim];
            self.keys = Some(all_keys.clone().slice(range.clone()));
            self.values = Some(all_values.clone().slice(range));
            self.start = start + keep_from;
        } else {
            self.keys = Some(all_keys.clone());
            self.values = Some(all_values.clone());
            self.start = start;
        }
        (all_keys, all_values, start)
    }

    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.keys.as_ref().map_or(0, |keys| keys.dims()[2])
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The caches of every layer, and the next absolute position.
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    layers: Vec<LayerCache<B>>,
    next_position: usize,
}

impl<B: Backend> KvCache<B> {
    /// One layer cache per entry of `windows` (`None` for global layers).
    pub fn new(windows: Vec<Option<usize>>) -> Self {
        Self { layers: windows.into_iter().map(LayerCache::new).collect(), next_position: 0 }
    }

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
