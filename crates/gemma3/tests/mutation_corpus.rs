//! A seeded mutation pass over the fuzz seed corpora, on stable Rust, in the normal test suite:
//! the seeds of `fuzz/corpus/<target>/`, then a fixed number of deterministic mutations of them,
//! go through the same harness functions as the cargo-fuzz targets (`fuzz/harness.rs`, included
//! below). It is no substitute for `cargo fuzz` (no coverage feedback), but it runs everywhere
//! and keeps every target's seeds and harness compiling and passing.
//!
//! A panic in a harness fails the test naming the target, the seed file, the case index and the
//! mutations; the mutated input is written under Cargo's target temp dir
//! (`CARGO_TARGET_TMPDIR/mutation_corpus/`) to replay with `cargo fuzz run <target> <file>`.
//! A case is reproducible alone: its generator is seeded from the seed file's name and the case
//! index only.
//!
//! - Cases per target: the `CASES_*` constants; `MUTATION_CASES=N` overrides them all (e.g.
//!   `MUTATION_CASES=20000` for a long local run).
//! - A missing or empty corpus directory fails the test when `CI` is set (a CI run that skipped
//!   would prove nothing) and is skipped loudly elsewhere.
//! - Each target must have a seed that its harness accepts whole (loads and runs): otherwise the
//!   mutations would only ever reach the first checks of the parsers.

// The harness runs every model on NdArray.
#![cfg(feature = "ndarray")]

#[path = "../../../fuzz/harness.rs"]
mod harness;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::Instant;

/// Parsers: cheap cases.
const CASES_PARSERS: usize = 1000;
/// Model loaders: each accepted case builds a tiny model twice (float, int8) and generates.
const CASES_MODELS: usize = 200;
/// Unmutated seeds run per target, at most (a corpus grown by `cargo fuzz` can be large).
const MAX_PLAIN_SEEDS: usize = 64;
/// Failures reported in full before the test stops mutating.
const MAX_FAILURES: usize = 10;

type Harness = fn(&[u8]) -> bool;

#[test]
fn gguf_reader() {
    run("gguf_reader", harness::gguf_reader, CASES_PARSERS);
}

#[test]
fn gguf_model() {
    run("gguf_model", harness::gguf_model, CASES_MODELS);
}

#[test]
fn hf_loader() {
    run("hf_loader", harness::hf_loader, CASES_MODELS);
}

#[test]
fn preset_loader() {
    run("preset_loader", harness::preset_loader, CASES_MODELS);
}

#[test]
fn gemma3_config() {
    run("gemma3_config", harness::gemma3_config, CASES_PARSERS);
}

#[test]
fn tokenizer() {
    run("tokenizer", harness::tokenizer, CASES_PARSERS);
}

/// `fuzz/corpus/<target>` of this checkout (the manifest dir at run time: a test binary reused
/// from another checkout through a shared target dir carries that checkout's path).
fn corpus_dir(target: &str) -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest.join("../../fuzz/corpus").join(target)
}

/// The seed files of a corpus directory, sorted by name; `None` when it cannot be read.
fn read_seeds(target: &str) -> Option<Vec<(String, Vec<u8>)>> {
    let dir = corpus_dir(target);
    let mut seeds = Vec::new();
    for entry in std::fs::read_dir(&dir).ok()? {
        let path = entry.ok()?.path();
        let name = path.file_name()?.to_string_lossy().into_owned();
        if name.starts_with('.') || !path.is_file() {
            continue;
        }
        let bytes =
            std::fs::read(&path).unwrap_or_else(|e| panic!("reading seed {}: {e}", path.display()));
        seeds.push((name, bytes));
    }
    seeds.sort();
    Some(seeds)
}

fn run(target: &str, harness: Harness, default_cases: usize) {
    let seeds = match read_seeds(target) {
        Some(seeds) if !seeds.is_empty() => seeds,
        _ => {
            let dir = corpus_dir(target);
            assert!(
                !crate::gemma3_common::checkpoint::in_ci(),
                "{}: no seed corpus for fuzz target `{target}` (write it with `python3 fuzz/make_seeds.py`)",
                dir.display()
            );
            eprintln!(
                "SKIPPED: {}: no seed corpus for fuzz target `{target}` (write it with `python3 fuzz/make_seeds.py`)",
                dir.display()
            );
            return;
        }
    };
    let cases = std::env::var("MUTATION_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    let started = Instant::now();
    let mut failures = Vec::new();

    let in_flight = InFlight::new(target);
    let mut seeds_accepted = 0;
    for (name, bytes) in seeds.iter().take(MAX_PLAIN_SEEDS) {
        let _ = harness::take_last_refusal();
        in_flight.record(name, None, bytes);
        match catch(harness, bytes) {
            Ok(true) => seeds_accepted += 1,
            Ok(false) => eprintln!(
                "{target}: seed {name} is not accepted whole (fine while another seed is); last error: {}",
                harness::take_last_refusal()
            ),
            Err(message) => failures.push(failure(target, name, None, &[], bytes, &message)),
        }
    }

    let mut cases_accepted = 0;
    for case in 0..cases {
        if failures.len() >= MAX_FAILURES {
            break;
        }
        let (name, seed) = &seeds[case % seeds.len()];
        let mut rng =
            Rng::new(fnv1a(name.as_bytes()) ^ (case as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut bytes = seed.clone();
        let count = 1 + rng.below(4);
        let mutations: Vec<Mutation> = (0..count).map(|_| mutate(&mut bytes, &mut rng)).collect();
        in_flight.record(name, Some(case), &bytes);
        match catch(harness, &bytes) {
            Ok(accepted) => cases_accepted += usize::from(accepted),
            Err(message) => failures.push(failure(
                target,
                name,
                Some(case),
                &mutations,
                &bytes,
                &message,
            )),
        }
    }
    harness::remove_scratch();
    in_flight.finish();

    eprintln!(
        "{target}: {} seed(s), {seeds_accepted} accepted whole; {cases} mutated case(s), {cases_accepted} accepted; {:.1?}",
        seeds.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "fuzz target `{target}`: {} input(s) panicked:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(
        seeds_accepted > 0,
        "fuzz target `{target}`: no seed of {} is accepted whole, so mutations only reach the first checks of the parsers: \
         regenerate the corpus (`python3 fuzz/make_seeds.py`) or fix what refuses it (see the lines above)",
        corpus_dir(target).display()
    );
}

/// The input being run, on disk, so that a crash no `catch_unwind` can stop (a segfault, an
/// abort) leaves it behind for replay: `CARGO_TARGET_TMPDIR/mutation_corpus/<target>-in-flight`,
/// its seed and case in `<target>-in-flight.txt`. Removed when the pass ends.
struct InFlight {
    input: PathBuf,
    label: PathBuf,
}

impl InFlight {
    fn new(target: &str) -> Self {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mutation_corpus");
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        Self {
            input: dir.join(format!("{target}-in-flight")),
            label: dir.join(format!("{target}-in-flight.txt")),
        }
    }

    fn record(&self, seed: &str, case: Option<usize>, bytes: &[u8]) {
        let label = format!("seed {seed}, case {case:?}\n");
        let written =
            std::fs::write(&self.label, label).and_then(|()| std::fs::write(&self.input, bytes));
        written.unwrap_or_else(|e| panic!("writing {}: {e}", self.input.display()));
    }

    fn finish(&self) {
        let _ = std::fs::remove_file(&self.input);
        let _ = std::fs::remove_file(&self.label);
    }
}

fn catch(harness: Harness, bytes: &[u8]) -> Result<bool, String> {
    catch_unwind(AssertUnwindSafe(|| harness(bytes))).map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "(a panic without a message)".to_string())
    })
}

/// The report of one panicking input, which is also written out for replay.
fn failure(
    target: &str,
    seed: &str,
    case: Option<usize>,
    mutations: &[Mutation],
    bytes: &[u8],
    message: &str,
) -> String {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mutation_corpus");
    let file = match case {
        Some(case) => dir.join(format!("{target}-{seed}-case{case}")),
        None => dir.join(format!("{target}-{seed}")),
    };
    let saved = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&file, bytes));
    let replay = match saved {
        Ok(()) => format!(
            "replay: cargo +nightly fuzz run {target} {}",
            file.display()
        ),
        Err(e) => format!("(could not write the input to {}: {e})", file.display()),
    };
    let what = match case {
        Some(case) => format!("seed {seed}, case {case}, mutations {mutations:?}"),
        None => format!("seed {seed} itself"),
    };
    format!(
        "{what} ({} bytes): panicked: {message}\n  {replay}",
        bytes.len()
    )
}

// --------------------------------------------------------------------------------- mutator

/// xorshift64* (Vigna): small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // splitmix64 of the seed, so that nearby seeds give unrelated streams; never 0.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Self(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-enough in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Bytes that often mean something at a boundary.
const BOUNDARY_BYTES: [u8; 4] = [0x00, 0xff, 0x7f, 0x80];

/// Integers at the edges of the widths headers use (written little-endian, 4 or 8 bytes).
const BOUNDARY_INTS: [u64; 14] = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0xffff,
    i32::MAX as u64,
    1 << 31, // i32::MIN as u32
    u32::MAX as u64 - 1,
    u32::MAX as u64,
    1 << 32,
    i64::MAX as u64,
    1 << 63, // i64::MIN as u64
    u64::MAX,
];

/// What replaces a number in a JSON text: edges of every integer width, float extremes, other
/// JSON types.
const BOUNDARY_NUMBERS: [&str; 22] = [
    "0",
    "-1",
    "1",
    "2",
    "3",
    "255",
    "65536",
    "2147483648",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    "1e308",
    "1e-320",
    "-0",
    "0.5",
    "3.4e38",
    "1e39",
    "null",
    "\"7\"",
    "[]",
];

/// Positions near the start (headers, JSON keys) are picked half the time.
const HEAD: usize = 1024;

#[derive(Debug, Clone)]
#[allow(dead_code)] // The fields are read through `Debug`, in failure reports.
enum Mutation {
    FlipBit { at: usize, bit: u8 },
    SetByte { at: usize, value: u8 },
    Overwrite { at: usize, width: usize, value: u64 },
    Truncate { len: usize },
    Duplicate { from: usize, len: usize, to: usize },
    Delete { from: usize, len: usize },
    Number { at: usize, text: &'static str },
}

fn position(rng: &mut Rng, len: usize) -> usize {
    if rng.below(2) == 0 {
        rng.below(len.min(HEAD))
    } else {
        rng.below(len)
    }
}

/// Applies one random mutation to `bytes` and returns it.
fn mutate(bytes: &mut Vec<u8>, rng: &mut Rng) -> Mutation {
    let len = bytes.len();
    if len == 0 {
        let value = rng.pick(&BOUNDARY_INTS);
        bytes.extend_from_slice(&value.to_le_bytes()[..4]);
        return Mutation::Overwrite {
            at: 0,
            width: 4,
            value,
        };
    }
    match rng.below(8) {
        0 => {
            let (at, bit) = (position(rng, len), rng.below(8) as u8);
            bytes[at] ^= 1 << bit;
            Mutation::FlipBit { at, bit }
        }
        1 => {
            let (at, value) = (position(rng, len), rng.pick(&BOUNDARY_BYTES));
            bytes[at] = value;
            Mutation::SetByte { at, value }
        }
        2 | 3 => {
            let width = if rng.below(2) == 0 { 4 } else { 8 };
            let (at, value) = (position(rng, len), rng.pick(&BOUNDARY_INTS));
            if bytes.len() < at + width {
                bytes.resize(at + width, 0);
            }
            bytes[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
            Mutation::Overwrite { at, width, value }
        }
        4 => {
            let len = rng.below(len);
            bytes.truncate(len);
            Mutation::Truncate { len }
        }
        5 => {
            let from = position(rng, len);
            let chunk = 1 + rng.below((len - from).min(64));
            let to = rng.below(len + 1);
            let copy = bytes[from..from + chunk].to_vec();
            let tail = bytes.split_off(to);
            bytes.extend_from_slice(&copy);
            bytes.extend_from_slice(&tail);
            Mutation::Duplicate {
                from,
                len: chunk,
                to,
            }
        }
        6 => {
            let from = position(rng, len);
            let chunk = 1 + rng.below((len - from).min(64));
            bytes.drain(from..from + chunk);
            Mutation::Delete { from, len: chunk }
        }
        _ => {
            let start = position(rng, len);
            let text = rng.pick(&BOUNDARY_NUMBERS);
            // The first number at or after `start`: digits with a sign, point and exponent.
            let Some(first) = bytes[start..]
                .iter()
                .position(u8::is_ascii_digit)
                .map(|i| start + i)
            else {
                let value = rng.pick(&BOUNDARY_BYTES);
                bytes[start] = value;
                return Mutation::SetByte { at: start, value };
            };
            let number =
                |b: &u8| b.is_ascii_digit() || matches!(*b, b'.' | b'e' | b'E' | b'+' | b'-');
            let mut begin = first;
            while begin > 0 && number(&bytes[begin - 1]) {
                begin -= 1;
            }
            let end = bytes[first..]
                .iter()
                .position(|b| !number(b))
                .map_or(bytes.len(), |i| first + i);
            let tail = bytes.split_off(end);
            bytes.truncate(begin);
            bytes.extend_from_slice(text.as_bytes());
            bytes.extend_from_slice(&tail);
            Mutation::Number { at: begin, text }
        }
    }
}
