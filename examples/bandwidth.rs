//! Memory read bandwidth of this machine, and how close the int8 logits GEMV comes to it.
//!
//! `cargo run --release --example bandwidth [-- THREADS]`
//!
//! 1. Streams a 512 MiB buffer (far beyond any cache) with 1 thread and with all threads, and
//!    reports the best of several passes in GB/s.
//! 2. Times the int8 GEMV of Gemma3 270M's logits, `[1×640] @ [640×262144]`, on flex: as a
//!    `QuantizedLinear` (stored channel-major, as quantizing leaves it, and row-major `[K, N]`)
//!    and as the tied `QuantizedEmbedding::reverse` (`[N, K]` seen transposed), and reports
//!    the bytes it reads per second as a share of (1).

use std::time::Instant;

use burn::module::{Param, ParamId};
use burn::tensor::{DType, Distribution, Int, Tensor};
use burn_int8::{QuantizedEmbedding, QuantizedLinear};
use rayon::prelude::*;

const BUFFER_BYTES: usize = 512 << 20;
const PASSES: usize = 7;

/// Sums the buffer as u64 words in parallel chunks, eight independent lanes (one 512-bit
/// register) so the adds never wait on each other; the sum keeps the reads alive.
fn stream(buffer: &[u64]) -> u64 {
    buffer
        .par_chunks(1 << 16)
        .map(|chunk| {
            let lanes = chunk.chunks_exact(8).fold([0u64; 8], |mut lanes, words| {
                for (lane, &word) in lanes.iter_mut().zip(words) {
                    *lane = lane.wrapping_add(word);
                }
                lanes
            });
            lanes.iter().fold(0u64, |a, &b| a.wrapping_add(b))
        })
        .reduce(|| 0, u64::wrapping_add)
}

fn best_gb_s(bytes: usize, mut run: impl FnMut()) -> f64 {
    run();
    (0..PASSES)
        .map(|_| {
            let start = Instant::now();
            run();
            bytes as f64 / start.elapsed().as_secs_f64() / 1e9
        })
        .fold(0.0, f64::max)
}

fn read_bandwidth(threads: usize) -> f64 {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool");
    let buffer: Vec<u64> = (0..BUFFER_BYTES / 8).map(|i| i as u64).collect();
    pool.install(|| best_gb_s(BUFFER_BYTES, || assert_ne!(stream(&buffer), 1)))
}

fn main() {
    let all = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if let Err(err) = burn_int8::set_num_threads(all) {
        eprintln!("threads: {err}");
    }
    println!("cpu kernels: {:?}", burn_int8::kernels::cpu::Isa::detect());
    let one = read_bandwidth(1);
    let many = read_bandwidth(all);
    println!(
        "read bandwidth, {BUFFER_BYTES} bytes: 1 thread {one:.1} GB/s, {all} threads {many:.1} GB/s"
    );

    type B = burn::backend::Flex;
    let device = Default::default();
    let (d_model, vocab) = (640, 262_144);
    let table = Tensor::<B, 2>::random([vocab, d_model], Distribution::Normal(0.0, 0.05), &device);
    // A contiguous `[K, N]` float weight, as a `Linear` holds it; quantizing stores it
    // channel-major. A second copy holds the same I8 values row-major, as a loaded record
    // would be without `Int8Weight`'s load mapper.
    let linear = QuantizedLinear::<B>::from_weights(
        Tensor::from_data(table.clone().transpose().into_data(), &device),
        None,
    )
    .expect("quantize");
    let mut row_major = linear.clone();
    row_major.weight.values = Param::initialized(
        ParamId::new(),
        Tensor::<B, 2, Int>::from_data(
            linear.weight.values.val().into_data(),
            (&device, DType::I8),
        ),
    );
    let embedding = QuantizedEmbedding::from_weights(table).expect("quantize");
    let x = Tensor::<B, 2>::random([1, d_model], Distribution::Normal(0.0, 1.0), &device);
    // Bytes read: the int8 weight plus its f32 scales.
    let bytes = vocab * d_model + vocab * 4;
    let channel_major = best_gb_s(bytes, || drop(linear.forward(x.clone()).into_data()));
    let kn = best_gb_s(bytes, || drop(row_major.forward(x.clone()).into_data()));
    let nk = best_gb_s(bytes, || drop(embedding.reverse(x.clone()).into_data()));
    println!("int8 GEMV [1x{d_model}]@[{d_model}x{vocab}] ({bytes} bytes), {all} threads:");
    let share = |gb_s: f64| 100.0 * gb_s / many;
    println!(
        "  QuantizedLinear, channel-major:       {channel_major:.1} GB/s = {:.0}% of read bandwidth",
        share(channel_major)
    );
    println!(
        "  QuantizedLinear, row-major [K, N]:    {kn:.1} GB/s = {:.0}% of read bandwidth",
        share(kn)
    );
    println!(
        "  QuantizedEmbedding::reverse [N, K]:   {nk:.1} GB/s = {:.0}% of read bandwidth",
        share(nk)
    );
    let summary = serde_json::json!({
        "read_gb_s_1": one, "read_gb_s_all": many, "threads": all,
        "gemv_channel_major_gb_s": channel_major, "gemv_kn_gb_s": kn, "gemv_nk_gb_s": nk,
    });
    println!("{summary}");
}
