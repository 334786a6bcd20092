//! Text generation as KerasHub's `Gemma3CausalLM.generate`: `max_length` counts BOS, prompt
//! and new tokens; greedy by default; stops at `<eos>` or `<end_of_turn>`; returns the prompt
//! and the continuation as one text.
//!
//! [`generate_batch`] takes several prompts at once, as KerasHub's `generate` takes a list:
//! shorter prompts are left-padded, a mask hides the pad slots and every row keeps its own
//! positions, so each prompt gets the text it would get alone; each stops at its own end token.

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use burn_int8_tokenizer::{StreamDecoder, Tokenizer};
use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::config::END_OF_TURN_ID;
use crate::error::Gemma3Error;
use crate::model::Gemma3;

/// The token id that fills pad slots (Gemma's `<pad>`; never attended to).
const PAD_ID: u32 = 0;

/// How the next token is chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum Sampler {
    /// The most likely token (KerasHub's default).
    Greedy,
    /// Sampling at `temperature`, optionally restricted to the `top_k` most likely tokens
    /// and/or the smallest set whose probability reaches `top_p`; reproducible from `seed`.
    /// Read as HF and llama.cpp read them: `temperature` 0 is greedy, `top_k` 0 (or `None`)
    /// keeps every token, `top_p` must lie in (0, 1]. [`Sampler::validate`] rejects the rest.
    Random {
        temperature: f32,
        top_k: Option<usize>,
        top_p: Option<f32>,
        seed: u64,
    },
}

impl Sampler {
    /// The sampler the options describe: greedy when none is given or `temperature` is 0,
    /// else [`Sampler::Random`] (temperature 1 by default); invalid values are errors.
    pub fn from_options(
        temperature: Option<f32>,
        top_k: Option<usize>,
        top_p: Option<f32>,
        seed: u64,
    ) -> Result<Self, Gemma3Error> {
        // Every option is checked, even those greedy decoding then ignores: `--temperature 0
        // --top-p nan` is a mistake to report, not to hide.
        let random = Sampler::Random {
            temperature: temperature.unwrap_or(1.0),
            top_k,
            top_p,
            seed,
        };
        random.validate()?;
        Ok(match (temperature, top_k, top_p) {
            (None, None, None) => Sampler::Greedy,
            (Some(0.0), _, _) => Sampler::Greedy,
            _ => random,
        })
    }

    /// Rejects a negative, NaN or infinite temperature and a `top_p` outside (0, 1].
    pub fn validate(&self) -> Result<(), Gemma3Error> {
        let Sampler::Random {
            temperature, top_p, ..
        } = self
        else {
            return Ok(());
        };
        if !(temperature.is_finite() && *temperature >= 0.0) {
            return Err(Gemma3Error::InvalidSampler {
                option: "temperature",
                value: temperature.to_string(),
                expected: "a finite value >= 0 (0 is greedy)",
            });
        }
        if let Some(p) = top_p
            && !(*p > 0.0 && *p <= 1.0)
        {
            return Err(Gemma3Error::InvalidSampler {
                option: "top_p",
                value: p.to_string(),
                expected: "a value in (0, 1]",
            });
        }
        Ok(())
    }
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
    /// The prompt exactly as given, then the continuation.
    pub text: String,
    /// Every token: BOS, prompt, new tokens (the stop token included when there is one).
    pub token_ids: Vec<u32>,
    pub prompt_tokens: usize,
    pub stop: StopReason,
}

/// Encodes `prompt` as the model sees it: BOS then the prompt's tokens.
///
/// `max_length` beyond the model's context is [`Gemma3Error::ExceedsContext`] (whatever the
/// prompt); a prompt longer than `max_length` is [`Gemma3Error::PromptTooLong`]; an id without
/// a row in the embedding table is [`Gemma3Error::TokenOutOfRange`].
pub fn encode_prompt<B: Backend>(
    model: &Gemma3<B>,
    tokenizer: &Tokenizer,
    prompt: &str,
    max_length: usize,
) -> Result<Vec<u32>, Gemma3Error> {
    if prompt.is_empty() {
        return Err(Gemma3Error::EmptyPrompt);
    }
    let context = model.config.max_position_embeddings;
    if max_length > context {
        return Err(Gemma3Error::ExceedsContext {
            option: "max_length (--max-length)",
            value: max_length,
            context,
        });
    }
    let ids = tokenizer.encode(prompt, true)?;
    if ids.len() > max_length {
        return Err(Gemma3Error::PromptTooLong {
            tokens: ids.len(),
            limit: max_length,
            why: "max_length (--max-length) counts BOS, prompt and new tokens",
        });
    }
    check_token_ids(model, &ids)?;
    Ok(ids)
}

/// Every id must have a row in the model's embedding table: the forward pass would turn one
/// past it into a zero embedding (it cannot fail), so callers check first.
pub fn check_token_ids<B: Backend>(model: &Gemma3<B>, ids: &[u32]) -> Result<(), Gemma3Error> {
    let vocab_size = model.embed_tokens.vocab_size();
    match ids.iter().find(|&&id| id as usize >= vocab_size) {
        Some(&id) => Err(Gemma3Error::TokenOutOfRange { id, vocab_size }),
        None => Ok(()),
    }
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
    let mut outputs = generate_batch(
        model,
        tokenizer,
        &[prompt],
        max_length,
        sampler,
        |_, piece| on_text(piece),
    )?;
    outputs.pop().ok_or(Gemma3Error::EmptyPrompt)
}

/// One prompt's state during batched generation.
struct Row<'t> {
    ids: Vec<u32>,
    prompt_tokens: usize,
    prompt_text: String,
    /// Decodes each new token once; holds back a character split across byte tokens.
    stream: StreamDecoder<'t>,
    /// Each prompt samples from its own generator seeded with the sampler's seed, so a prompt
    /// draws the same tokens in a batch as alone.
    rng: Option<StdRng>,
    stop: Option<StopReason>,
}

/// [`generate`] over several prompts at once, one batch through the model: each prompt
/// (`max_length` counting its own BOS, prompt and new tokens) gets the text it would get alone
/// and stops at its own end token. `on_text(i, piece)` streams prompt `i`'s continuation.
pub fn generate_batch<B: Backend>(
    model: &Gemma3<B>,
    tokenizer: &Tokenizer,
    prompts: &[&str],
    max_length: usize,
    sampler: &Sampler,
    mut on_text: impl FnMut(usize, &str),
) -> Result<Vec<Generation>, Gemma3Error> {
    sampler.validate()?;
    let mut rows = Vec::with_capacity(prompts.len());
    for prompt in prompts {
        let ids = encode_prompt(model, tokenizer, prompt, max_length)?;
        let rng = match sampler {
            Sampler::Random { seed, .. } => Some(StdRng::seed_from_u64(*seed)),
            Sampler::Greedy => None,
        };
        let stop = (ids.len() >= max_length).then_some(StopReason::MaxLength);
        rows.push(Row {
            prompt_tokens: ids.len(),
            // The prompt as given: decoding its ids would drop control tokens (`<eos>`) that
            // the tokenizer parsed whole, and `text` must start with the prompt.
            prompt_text: prompt.to_string(),
            ids,
            stream: tokenizer.stream_decoder(),
            rng,
            stop,
        });
    }
    let longest = rows.iter().map(|row| row.ids.len()).max().unwrap_or(0);
    let pads: Vec<usize> = rows.iter().map(|row| longest - row.ids.len()).collect();
    let device = model.device();
    let mut cache = model.new_padded_cache(pads.clone());
    // The first pass feeds every prompt left-padded to the longest; later passes one token each.
    let mut input: Vec<u32> = rows
        .iter()
        .zip(&pads)
        .flat_map(|(row, &pad)| std::iter::repeat_n(PAD_ID, pad).chain(row.ids.iter().copied()))
        .collect();
    let mut width = longest;
    while rows.iter().any(|row| row.stop.is_none()) {
        let ids = Tensor::<B, 2, Int>::from_data(
            TensorData::new(
                input.iter().map(|&id| id as i64).collect::<Vec<_>>(),
                [rows.len(), width],
            ),
            &device,
        );
        let logits = model.forward_last(ids, &mut cache);
        if !crate::model::all_finite(&logits) {
            // Bisect on the first unfinished row alone (cheap: only on failure).
            let row = rows
                .iter()
                .find(|row| row.stop.is_none())
                .unwrap_or(&rows[0]);
            return Err(model.non_finite_error(&row.ids));
        }
        let next = next_tokens(logits, sampler, &mut rows);
        for (index, (row, &token)) in rows.iter_mut().zip(&next).enumerate() {
            if row.stop.is_some() {
                continue;
            }
            row.ids.push(token);
            if token == model.config.eos_token_id || token == END_OF_TURN_ID {
                row.stop = Some(StopReason::StopToken(token));
                continue;
            }
            let piece = row.stream.step(token)?;
            if !piece.is_empty() {
                on_text(index, &piece);
            }
            if row.ids.len() >= max_length {
                row.stop = Some(StopReason::MaxLength);
            }
        }
        input = rows
            .iter()
            .zip(next)
            .map(|(row, token)| if row.stop.is_some() { PAD_ID } else { token })
            .collect();
        width = 1;
    }
    rows.into_iter()
        .enumerate()
        .map(|(index, mut row)| {
            let stop = row.stop.unwrap_or(StopReason::MaxLength);
            let end = match stop {
                StopReason::StopToken(_) => row.ids.len() - 1,
                StopReason::MaxLength => row.ids.len(),
            };
            let rest = row.stream.finish()?;
            if !rest.is_empty() {
                on_text(index, &rest);
            }
            let continuation = tokenizer.decode(&row.ids[row.prompt_tokens..end])?;
            Ok(Generation {
                text: format!("{}{continuation}", row.prompt_text),
                token_ids: row.ids,
                prompt_tokens: row.prompt_tokens,
                stop,
            })
        })
        .collect()
}

/// The next token of every row from `logits [batch, vocab]`: argmax on the device when greedy,
/// else each row sampled on the host with its own generator.
fn next_tokens<B: Backend>(
    logits: Tensor<B, 2>,
    sampler: &Sampler,
    rows: &mut [Row<'_>],
) -> Vec<u32> {
    match sampler {
        Sampler::Greedy => {
            let ids = logits.argmax(1).into_data().convert::<i64>();
            ids.to_vec::<i64>()
                .unwrap_or_default()
                .into_iter()
                .map(|id| id as u32)
                .collect()
        }
        Sampler::Random {
            temperature,
            top_k,
            top_p,
            ..
        } => {
            let [_, vocab] = logits.dims();
            let values = logits
                .into_data()
                .convert::<f32>()
                .to_vec::<f32>()
                .unwrap_or_default();
            rows.iter_mut()
                .zip(values.chunks(vocab.max(1)))
                .map(|(row, logits)| match row.rng.as_mut() {
                    Some(rng) => sample(logits, *temperature, *top_k, *top_p, rng),
                    None => PAD_ID,
                })
                .collect()
        }
    }
}

/// `[1, len]` token ids on `device`. The ids are not checked: see [`check_token_ids`].
pub fn token_tensor<B: Backend>(ids: &[u32], device: &B::Device) -> Tensor<B, 2, Int> {
    let values: Vec<i64> = ids.iter().map(|&id| id as i64).collect();
    Tensor::from_data(TensorData::new(values, [1, ids.len()]), device)
}

/// Temperature, top-k and top-p sampling on host logits (options already validated;
/// temperature 0 is greedy, top-k 0 keeps every token).
fn sample(
    logits: &[f32],
    temperature: f32,
    top_k: Option<usize>,
    top_p: Option<f32>,
    rng: &mut StdRng,
) -> u32 {
    let mut candidates: Vec<(usize, f32)> = logits
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, l)| l.is_finite())
        .collect();
    // Stable sort: among equal logits the lowest id comes first, as argmax picks it.
    candidates.sort_by(|a, b| b.1.total_cmp(&a.1));
    if temperature == 0.0 {
        return candidates.first().map_or(PAD_ID, |c| c.0 as u32);
    }
    if let Some(k) = top_k.filter(|&k| k > 0) {
        candidates.truncate(k);
    }
    let max = candidates.first().map_or(0.0, |c| c.1);
    let mut weights: Vec<f64> = candidates
        .iter()
        .map(|c| (((c.1 - max) / temperature) as f64).exp())
        .collect();
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
    candidates.last().map_or(PAD_ID, |c| c.0 as u32)
}
