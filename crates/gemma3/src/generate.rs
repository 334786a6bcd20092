//! Text generation as KerasHub's `Gemma3CausalLM.generate`: `max_length` counts BOS, prompt
//! and new tokens; greedy by default; stops at `<eos>` or `<end_of_turn>`; returns the prompt
//! and the continuation as one text.

use burn::tensor::{ElementConversion, Int, Tensor, TensorData, backend::Backend};
use burn_int8_tokenizer::Tokenizer;
use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::config::END_OF_TURN_ID;
use crate::error::Gemma3Error;
use crate::model::Gemma3;

/// How the next token is chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum Sampler {
    /// The most likely token (KerasHub's default).
    Greedy,
    /// Sampling at `temperature`, optionally restricted to the `top_k` most likely tokens
    /// and/or the smallest set whose probability reaches `top_p`; reproducible from `seed`.
    Random { temperature: f32, top_k: Option<usize>, top_p: Option<f32>, seed: u64 },
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// `<eos>` or `<end_of_turn>` was generated (it is in `token_ids`, not in `text`).
    StopToken(u32),
    /// `max_length` tokens were reached.
    MaxLength,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// Prompt and continuation, as KerasHub returns it.
    pub text: String,
    /// Every token: BOS, prompt, new tokens (the stop token included when there is one).
    pub token_ids: Vec<u32>,
    pub prompt_tokens: usize,
    pub stop: StopReason,
}

/// Encodes `prompt` as the model sees it: BOS then the prompt's tokens.
pub fn encode_prompt<B: Backend>(model: &Gemma3<B>, tokenizer: &Tokenizer, prompt: &str, max_length: usize) -> Result<Vec<u32>, Gemma3Error> {
    if prompt.is_empty() {
        return Err(Gemma3Error::EmptyPrompt);
    }
    let ids = tokenizer.encode(prompt, true)?;
    let context = model.config.max_position_embeddings;
    if max_length > context {
        return Err(Gemma3Error::PromptTooLong { tokens: max_length, limit: context, why: "max_length exceeds the model's context" });
    }
    if ids.len() > max_length {
        return Err(Gemma3Error::PromptTooLong { tokens: ids.len(), limit: max_length, why: "max_length counts BOS, prompt and new tokens" });
    }
    Ok(ids)
}

/// Generates from `prompt` until a stop token or `max_length` tokens in all; `on_text` receives
/// the continuation piece by piece as it becomes final.
pub fn generate<B: Backend>(
    model: &Gemma3<B>,
    tokenizer: &Tokenizer,
    prompt: &str,
    max_length: usize,
    sampler: &Sampler,
    mut on_text: impl FnMut(&str),
) -> Result<Generation, Gemma3Error> {
    let mut ids = encode_prompt(model, tokenizer, prompt, max_length)?;
    let prompt_tokens = ids.len();
    let prompt_text = tokenizer.decode(&ids)?;
    let device = model.device();
    let mut rng = match sampler {
        Sampler::Random { seed, .. } => Some(StdRng::seed_from_u64(*seed)),
        Sampler::Greedy => None,
    };

    let mut cache = model.new_cache();
    let mut input = ids.clone();
    // Decodes each new token once; holds back a character split across byte tokens.
    let mut stream = tokenizer.stream_decoder();
    let mut stop = StopReason::MaxLength;
    while ids.len() < max_length {
        let logits = model.forward_last(token_tensor::<B>(&input, &device), &mut cache);
        let next = match (sampler, rng.as_mut()) {
            (Sampler::Random { temperature, top_k, top_p, .. }, Some(rng)) => {
                let logits = logits.into_data().convert::<f32>().to_vec::<f32>().unwrap_or_default();
                sample(&logits, *temperature, *top_k, *top_p, rng)
            }
            _ => logits.argmax(1).into_scalar().elem::<i64>() as u32,
        };
        ids.push(next);
        if next == model.config.eos_token_id || next == END_OF_TURN_ID {
            stop = StopReason::StopToken(next);
            break;
        }
        let piece = stream.step(next)?;
        if !piece.is_empty() {
            on_text(&piece);
        }
        input = vec![next];
    }
    let end = match stop {
        StopReason::StopToken(_) => ids.len() - 1,
        StopReason::MaxLength => ids.len(),
    };
    let rest = stream.finish()?;
    if !rest.is_empty() {
        on_text(&rest);
    }
    let continuation = tokenizer.decode(&ids[prompt_tokens..end])?;
    Ok(Generation { text: format!("{prompt_text}{continuation}"), token_ids: ids, prompt_tokens, stop })
}

/// `[1, len]` token ids on `device`.
pub fn token_tensor<B: Backend>(ids: &[u32], device: &B::Device) -> Tensor<B, 2, Int> {
    let values: Vec<i64> = ids.iter().map(|&id| id as i64).collect();
    Tensor::from_data(TensorData::new(values, [1, ids.len()]), device)
}

/// Temperature, top-k and top-p sampling on host logits.
fn sample(logits: &[f32], temperature: f32, top_k: Option<usize>, top_p: Option<f32>, rng: &mut StdRng) -> u32 {
    let temperature = if temperature.is_finite() && temperature > 0.0 { temperature } else { 1.0 };
    let mut candidates: Vec<(usize, f32)> = logits.iter().copied().enumerate().filter(|(_, l)| l.is_finite()).collect();
    candidates.sort_by(|a, b| b.1.total_cmp(&a.1));
    if let Some(k) = top_k {
        candidates.truncate(k.max(1));
    }
    let max = candidates.first().map_or(0.0, |c| c.1);
    let mut weights: Vec<f64> = candidates.iter().map(|c| (((c.1 - max) / temperature) as f64).exp()).collect();
    let total: f64 = weights.iter().sum();
    weights.iter_mut().for_each(|w| *w /= total);
    if let Some(p) = top_p {
        let mut cumulative = 0.0;
        let keep = weights.iter().position(|w| {
            cumulative += w;
            cumulative >= p as f64
        });
        if let Some(last) = keep {
            weights.truncate(last + 1);
            candidates.truncate(last + 1);
        }
    }
    let total: f64 = weights.iter().sum();
    let mut draw = rng.random::<f64>() * total;
    for (candidate, weight) in candidates.iter().zip(&weights) {
        draw -= weight;
        if draw <= 0.0 {
            return candidate.0 as u32;
        }
    }
    candidates.last().map_or(0, |c| c.0 as u32)
}
