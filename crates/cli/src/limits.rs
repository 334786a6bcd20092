//! Checks of what a user controls: option values (parsed by clap, so its message names the
//! option), sizes against the memory this machine has, and `--text` read with a cap.

use std::io::Read;
use std::path::Path;

use burn_int8_gemma3::Gemma3Config;

use crate::Error;
use crate::output::note;

/// A whole number of at least 1 (`--batch`, `--chunks`, `--context`); `-5` reaches this
/// parser (`allow_negative_numbers`) instead of being taken for an option.
pub fn positive(value: &str) -> Result<usize, String> {
    match value.trim().parse::<i128>() {
        Ok(n) if n >= 1 => usize::try_from(n).map_err(|_| format!("{n} is too large")),
        Ok(n) => Err(format!("{n}: expected a whole number of at least 1")),
        Err(_) => Err(format!("`{value}`: expected a whole number of at least 1")),
    }
}

/// A token id: a whole number from 0 to 2^32 - 1 (`--tokens -1,2` names `-1`).
pub fn token_id(value: &str) -> Result<u32, String> {
    value
        .trim()
        .parse::<u32>()
        .map_err(|_| format!("`{value}`: expected a token id, a whole number from 0 to 4294967295"))
}

/// The cores this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `--threads`: 1 to 4× the cores (more only slows everything down: each product is split
/// among threads that then wait for cores).
pub fn threads(value: &str) -> Result<usize, String> {
    let cores = cores();
    let max = 4 * cores;
    let bad = |what: String| {
        format!(
            "{what}: expected 1 to {max} (4× this machine's {cores} cores); omit --threads to use all {cores} cores"
        )
    };
    match value.trim().parse::<i128>() {
        Ok(n) if (1..=max as i128).contains(&n) => Ok(n as usize),
        Ok(n) => Err(bad(n.to_string())),
        Err(_) => Err(bad(format!("`{value}`"))),
    }
}

/// Bytes the biggest forward pass of `batch` rows of `seq` new tokens (after `past` cached
/// ones) holds at once, roughly: the attention scores and their softmax, the MLP's three
/// intermediate activations, logits for `logit_rows` rows per sequence, and the KV cache. An
/// over-estimate by design: it guards against allocations that abort the process.
pub fn forward_bytes(
    config: &Gemma3Config,
    batch: usize,
    seq: usize,
    past: usize,
    logit_rows: usize,
) -> u128 {
    let (b, s, keys) = (batch as u128, seq as u128, (seq + past) as u128);
    let scores = 2 * b * config.num_heads as u128 * s * keys * 4;
    let mlp = 3 * b * s * config.intermediate_size as u128 * 4;
    let logits = b * logit_rows as u128 * config.vocab_size as u128 * 4;
    let cache = 2
        * config.num_layers as u128
        * b
        * keys
        * (config.num_kv_heads * config.head_dim) as u128
        * 4;
    scores + mlp + logits + cache
}

/// The memory the system can give this process now (`MemAvailable`), if it says.
pub fn available_bytes() -> Option<u128> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u128 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// An error naming `options` when `bytes` exceed the available memory, before allocating
/// them (an allocation that fails aborts the process, with no message to act on).
pub fn check_memory(bytes: u128, options: &str) -> Result<(), Error> {
    let Some(available) = available_bytes() else {
        return Ok(());
    };
    if bytes > available {
        let gib = |b: u128| b as f64 / (1u128 << 30) as f64;
        return Err(format!(
            "{options}: this needs about {:.1} GiB for one forward pass, more than the {:.1} GiB of memory available; use smaller values",
            gib(bytes),
            gib(available)
        )
        .into());
    }
    Ok(())
}

/// The most `--text` bytes read: far beyond any evaluation text (GPL-3 is 35 KB, WikiText-103's
/// test set 1.3 MB), and a bound on what `--text /dev/zero` costs.
pub const TEXT_CAP_BYTES: u64 = 256 << 20;

/// Reads `--text` (`-`: stdin) as UTF-8, at most [`TEXT_CAP_BYTES`]. A FIFO is announced
/// first (opening it waits for a writer); a directory is refused.
pub fn read_text(path: &Path) -> Result<String, Error> {
    let name = path.display();
    let mut bytes = Vec::new();
    let read = |reader: &mut dyn Read, bytes: &mut Vec<u8>| {
        reader.take(TEXT_CAP_BYTES + 1).read_to_end(bytes)
    };
    if path.as_os_str() == "-" {
        read(&mut std::io::stdin().lock(), &mut bytes)
            .map_err(|e| format!("--text -: reading stdin: {e}"))?;
    } else {
        let meta = std::fs::metadata(path).map_err(|e| format!("--text {name}: {e}"))?;
        if meta.is_dir() {
            return Err(format!("--text {name}: is a directory, expected a text file").into());
        }
        if is_fifo(&meta) {
            note!("--text {name} is a FIFO: waiting for a writer to open it (Ctrl-C to stop)");
        }
        let mut file = std::fs::File::open(path).map_err(|e| format!("--text {name}: {e}"))?;
        read(&mut file, &mut bytes).map_err(|e| format!("--text {name}: {e}"))?;
    }
    if bytes.len() as u64 > TEXT_CAP_BYTES {
        return Err(format!(
            "--text {name}: longer than the cap of {} MiB on --text; pass a shorter text",
            TEXT_CAP_BYTES >> 20
        )
        .into());
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "--text {name}: not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
        .into()
    })
}

#[cfg(unix)]
fn is_fifo(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    meta.file_type().is_fifo()
}

#[cfg(not(unix))]
fn is_fifo(_meta: &std::fs::Metadata) -> bool {
    false
}
