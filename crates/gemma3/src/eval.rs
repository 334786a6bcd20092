//! What int8 costs in quality, measured on a text: perplexity of the float model and of its
//! int8 quantization, and how far int8's next-token distribution moves from float's.
//!
//! Windows are scored the way llama.cpp's `llama-perplexity` scores chunks, so the figures
//! compare with it: the token stream (BOS first) is cut into windows of `context` tokens, the
//! first token of each window becomes BOS, and only the second half of each window is scored
//! (position `i` predicts token `i + 1` for `i` from `context / 2` to `context - 2`), so every
//! scored token has at least half a window of context.

use std::time::Instant;

use burn::tensor::{Tensor, backend::Backend};
use rayon::prelude::*;

use crate::error::Gemma3Error;
use crate::generate::token_tensor;
use crate::model::Gemma3;

/// How to cut the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalOptions {
    /// Tokens per window (llama-perplexity's `--ctx-size`).
    pub context: usize,
    /// Score at most this many windows (llama-perplexity's `--chunks`); `None`: all of them.
    pub max_windows: Option<usize>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            context: 512,
            max_windows: None,
        }
    }
}

/// Mean, median, 99th percentile and maximum of a per-token quantity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub mean: f64,
    pub median: f64,
    pub p99: f64,
    pub max: f64,
}

/// The result of [`evaluate`].
#[derive(Debug, Clone, PartialEq)]
pub struct EvalReport {
    /// Tokens scored (windows × (context − 1 − context / 2)).
    pub tokens: usize,
    pub context: usize,
    pub windows: usize,
    /// `exp(mean negative log-likelihood)` of the float model.
    pub fp32_perplexity: f64,
    /// The same for the int8 model.
    pub int8_perplexity: f64,
    /// `KL(p_fp32 ‖ p_int8)` per scored token, in nats (llama-perplexity's KL divergence).
    pub kl: Summary,
    /// Fraction of scored tokens where both models' most likely token is the same.
    pub top1_agreement: f64,
    /// Fraction of scored tokens where the float model's most likely token is among int8's five
    /// most likely.
    pub top5_contains_top1: f64,
    pub seconds: f64,
}

impl EvalReport {
    /// `int8_perplexity / fp32_perplexity`.
    pub fn perplexity_ratio(&self) -> f64 {
        self.int8_perplexity / self.fp32_perplexity
    }

    /// One JSON object: `{"tokens":N,"context":C,"fp32":{"ppl":x},"int8":{"ppl":y},"kl":{..},..}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "tokens": self.tokens,
            "context": self.context,
            "windows": self.windows,
            "fp32": {"ppl": self.fp32_perplexity},
            "int8": {"ppl": self.int8_perplexity},
            "ppl_ratio": self.perplexity_ratio(),
            "kl": {"mean": self.kl.mean, "median": self.kl.median, "p99": self.kl.p99, "max": self.kl.max},
            "top1_agreement": self.top1_agreement,
            "top5_contains_top1": self.top5_contains_top1,
            "seconds": self.seconds,
        })
    }
}

impl std::fmt::Display for EvalReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} tokens scored in {} windows of {} ({:.1} s)",
            self.tokens, self.windows, self.context, self.seconds
        )?;
        writeln!(
            f,
            "perplexity  fp32 {:.4}  int8 {:.4}  (int8/fp32 {:.4})",
            self.fp32_perplexity,
            self.int8_perplexity,
            self.perplexity_ratio()
        )?;
        writeln!(
            f,
            "KL(fp32 || int8) per token  mean {:.6}  median {:.6}  p99 {:.6}  max {:.6}",
            self.kl.mean, self.kl.median, self.kl.p99, self.kl.max
        )?;
        write!(
            f,
            "top-1 agreement {:.2}%  fp32 top-1 in int8 top-5 {:.2}%",
            100.0 * self.top1_agreement,
            100.0 * self.top5_contains_top1
        )
    }
}

/// Windows `evaluate` will score for `tokens` tokens, or an error saying why there are none.
pub fn window_count(
    tokens: usize,
    context_limit: usize,
    options: &EvalOptions,
) -> Result<usize, Gemma3Error> {
    let context = options.context;
    if context < 4 {
        return Err(Gemma3Error::Eval(format!(
            "context {context} is too short: at least 4 tokens are needed to score the second half of a window"
        )));
    }
    if context > context_limit {
        return Err(Gemma3Error::ExceedsContext {
            option: "context (--context)",
            value: context,
            context: context_limit,
        });
    }
    let windows = (tokens / context).min(options.max_windows.unwrap_or(usize::MAX));
    if windows == 0 {
        return Err(Gemma3Error::Eval(format!(
            "the text has {tokens} tokens, fewer than one window of {context}"
        )));
    }
    Ok(windows)
}

/// Scores `tokens` (BOS first, as `tokenizer.encode(text, true)` gives them) with `fp32` and
/// `int8`, the same model in two precisions, window by window; `progress(done, windows)` after
/// each window.
pub fn evaluate<B: Backend>(
    fp32: &Gemma3<B>,
    int8: &Gemma3<B>,
    tokens: &[u32],
    options: &EvalOptions,
    mut progress: impl FnMut(usize, usize),
) -> Result<EvalReport, Gemma3Error> {
    let started = Instant::now();
    let context = options.context;
    let windows = window_count(tokens.len(), fp32.config.max_position_embeddings, options)?;
    let vocab = fp32.config.vocab_size;
    if let Some(&id) = tokens.iter().find(|&&id| id as usize >= vocab) {
        return Err(Gemma3Error::TokenOutOfRange {
            id,
            vocab_size: vocab,
        });
    }
    // Each window's ids are in `tokens`; the tables themselves must have `vocab` rows too.
    crate::generate::check_token_ids(fp32, tokens)?;
    crate::generate::check_token_ids(int8, tokens)?;
    let first = context / 2;
    let mut scores = Scores::default();
    for window in 0..windows {
        let mut ids = tokens[window * context..(window + 1) * context].to_vec();
        ids[0] = fp32.config.bos_token_id;
        let targets = &ids[first + 1..];
        let reference = scored_logits(fp32, &ids, first)?;
        let quantized = scored_logits(int8, &ids, first)?;
        for (model, logits) in [(fp32, &reference), (int8, &quantized)] {
            if !logits.iter().all(|v| v.is_finite()) {
                return Err(model.non_finite_error(&ids));
            }
        }
        // Rows are independent: scored in parallel (a row is a whole vocabulary of exps).
        let rows: Vec<TokenScore> = reference
            .par_chunks_exact(vocab)
            .zip(quantized.par_chunks_exact(vocab))
            .zip(targets.par_iter())
            .map(|((p, q), &target)| TokenScore::new(p, q, target as usize))
            .collect();
        rows.into_iter().for_each(|row| scores.add(row));
        progress(window + 1, windows);
    }
    Ok(scores.report(context, windows, started.elapsed().as_secs_f64()))
}

/// Logits (host, row-major `[context - 1 - first, vocab]`) of positions `first..context - 1`.
fn scored_logits<B: Backend>(
    model: &Gemma3<B>,
    ids: &[u32],
    first: usize,
) -> Result<Vec<f32>, Gemma3Error> {
    let device = model.device();
    let hidden = model.forward_hidden(token_tensor::<B>(ids, &device), &mut model.new_cache());
    let [batch, seq, width] = hidden.dims();
    // Only the scored half goes through the (vocabulary-wide) output projection.
    let scored: Tensor<B, 3> = hidden.slice([0..batch, first..seq - 1, 0..width]);
    let logits = model.embed_tokens.reverse(scored);
    logits
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| Gemma3Error::Eval(format!("reading logits back: {e:?}")))
}

/// What one scored token contributes.
struct TokenScore {
    fp32_nll: f64,
    int8_nll: f64,
    kl: f64,
    top1_same: bool,
    top5_contains: bool,
}

impl TokenScore {
    /// `p` and `q` are the float and int8 logits, `target` the true next token.
    fn new(p: &[f32], q: &[f32], target: usize) -> Self {
        let (p_lse, p_top) = log_sum_exp_and_argmax(p);
        let (q_lse, q_top) = log_sum_exp_and_argmax(q);
        // KL(p‖q) = Σ p_i (log p_i − log q_i), with log p_i = p_i − lse(p).
        let kl: f64 = p
            .iter()
            .zip(q)
            .map(|(&a, &b)| {
                let log_p = a as f64 - p_lse;
                log_p.exp() * (log_p - (b as f64 - q_lse))
            })
            .sum();
        Self {
            fp32_nll: p_lse - p[target] as f64,
            int8_nll: q_lse - q[target] as f64,
            // Rounding can leave a tiny negative sum where the two distributions agree.
            kl: kl.max(0.0),
            top1_same: p_top == q_top,
            top5_contains: q.iter().filter(|&&v| v > q[p_top]).count() < 5,
        }
    }
}

/// Running sums over scored tokens.
#[derive(Default)]
struct Scores {
    fp32_nll: f64,
    int8_nll: f64,
    kl: Vec<f64>,
    top1_same: usize,
    top5_contains: usize,
}

impl Scores {
    fn add(&mut self, token: TokenScore) {
        self.fp32_nll += token.fp32_nll;
        self.int8_nll += token.int8_nll;
        self.kl.push(token.kl);
        self.top1_same += usize::from(token.top1_same);
        self.top5_contains += usize::from(token.top5_contains);
    }

    fn report(mut self, context: usize, windows: usize, seconds: f64) -> EvalReport {
        let tokens = self.kl.len();
        let n = tokens.max(1) as f64;
        self.kl.sort_by(f64::total_cmp);
        let quantile = |fraction: f64| {
            self.kl
                .get(((tokens.saturating_sub(1)) as f64 * fraction).round() as usize)
                .copied()
                .unwrap_or(f64::NAN)
        };
        EvalReport {
            tokens,
            context,
            windows,
            fp32_perplexity: (self.fp32_nll / n).exp(),
            int8_perplexity: (self.int8_nll / n).exp(),
            kl: Summary {
                mean: self.kl.iter().sum::<f64>() / n,
                median: quantile(0.5),
                p99: quantile(0.99),
                max: self.kl.last().copied().unwrap_or(f64::NAN),
            },
            top1_agreement: self.top1_same as f64 / n,
            top5_contains_top1: self.top5_contains as f64 / n,
            seconds,
        }
    }
}

/// `log Σ exp(x)` in f64 (shifted by the maximum) and the index of the maximum.
fn log_sum_exp_and_argmax(x: &[f32]) -> (f64, usize) {
    let (top, max) =
        x.iter().enumerate().fold(
            (0, f32::NEG_INFINITY),
            |(i, m), (j, &v)| if v > m { (j, v) } else { (i, m) },
        );
    let sum: f64 = x.iter().map(|&v| (v as f64 - max as f64).exp()).sum();
    (max as f64 + sum.ln(), top)
}
