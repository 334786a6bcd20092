//! Draws `benches/gemma3_int8_vs_fp32.svg` from the JSON lines of `burn-int8 gemma3 bench --json`.
//!
//! `cargo run --release -p burn-int8-gemma3 --example bench_chart [-- RESULTS.jsonl [OUT.svg]]`
//! (defaults: `benches/results.jsonl`, `benches/gemma3_int8_vs_fp32.svg`; `benches/run.sh`
//! fills the first and calls this).
//!
//! One group of bars per backend (its latest line): int8/fp32 prefill speed, decode speed and peak RSS, each
//! measured in the same `bench` invocation, and, for lines written by `benches/llamacpp.sh`, int8
//! against llama.cpp's Q8_0 of the same GGUF measured in the same round. Ratios, not times: the
//! machines are noisy.

use std::error::Error;

use plotters::prelude::*;
use serde_json::Value;

/// (legend, key, baseline): int8's figure over the baseline's, from one line.
const METRICS: [(&str, &str, &[&str]); 5] = [
    ("prefill speed / fp32", "prefill_tok_s", &["fp32"]),
    ("decode speed / fp32", "decode_tok_s", &["fp32"]),
    ("peak RSS / fp32", "peak_rss_bytes", &["fp32"]),
    (
        "prefill / llama.cpp Q8_0",
        "prefill_tok_s",
        &["llamacpp", "Q8_0"],
    ),
    (
        "decode / llama.cpp Q8_0",
        "decode_tok_s",
        &["llamacpp", "Q8_0"],
    ),
];
const COLORS: [RGBColor; 5] = [
    RGBColor(66, 133, 244),
    RGBColor(219, 68, 55),
    RGBColor(120, 120, 120),
    RGBColor(140, 190, 250),
    RGBColor(240, 150, 140),
];

/// `(backend, ratios in METRICS order)` from one bench JSON line; a baseline the line lacks
/// (llama.cpp in a plain `bench` line) gives 0, drawn as no bar.
fn ratios(line: &Value) -> Option<(String, [f64; 5])> {
    let backend = line.get("backend")?.as_str()?.to_string();
    let threads = line
        .get("threads")
        .and_then(Value::as_str)
        .map_or(String::new(), |t| format!(" ({t} threads)"));
    // Runs from machines with different kernels are different bars.
    let kernels = line
        .get("cpu_kernels")
        .and_then(Value::as_str)
        .map_or(String::new(), |k| format!(", {k}"));
    let mut out = [0.0; 5];
    for (slot, (_, key, baseline)) in out.iter_mut().zip(METRICS) {
        let int8 = line.get("int8")?.get(key)?.as_f64()?;
        let base = baseline
            .iter()
            .try_fold(line, |v, part| v.get(part))
            .and_then(|v| v.get(key))
            .and_then(Value::as_f64);
        match base {
            Some(base) if base > 0.0 => *slot = int8 / base,
            Some(_) => {}
            // Our own fp32 is in every bench line; only llama.cpp may be absent.
            None if baseline[0] == "fp32" => return None,
            None => {}
        }
    }
    Some((backend + &kernels + &threads, out))
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let input = args
        .next()
        .unwrap_or_else(|| "benches/results.jsonl".into());
    let output = args
        .next()
        .unwrap_or_else(|| "benches/gemma3_int8_vs_fp32.svg".into());
    let text = std::fs::read_to_string(&input).map_err(|e| format!("{input}: {e}"))?;
    // The file is a history: the chart shows each backend's latest run.
    let mut rows: Vec<(String, [f64; 5])> = Vec::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let (name, values) = serde_json::from_str::<Value>(line)
            .ok()
            .as_ref()
            .and_then(ratios)
            .ok_or(format!("{input}: not a bench JSON line: {line}"))?;
        match rows.iter_mut().find(|(existing, _)| *existing == name) {
            Some(row) => row.1 = values,
            None => rows.push((name, values)),
        }
    }
    if rows.is_empty() {
        return Err(format!("{input}: no results").into());
    }
    // A log axis: ratios span 0.3× (RSS) to tens (ndarray's slow fp32 logits).
    let top = rows
        .iter()
        .flat_map(|(_, r)| r.iter().copied())
        .fold(1.0f64, f64::max)
        * 2.0;
    let bottom = rows
        .iter()
        .flat_map(|(_, r)| r.iter().copied())
        .filter(|r| *r > 0.0)
        .fold(1.0f64, f64::min)
        / 2.0;

    let root = SVGBackend::new(&output, (300 * rows.len() as u32 + 160, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Gemma3 270M: int8 / baseline, same run (higher is better for speed, lower for RSS)",
            ("sans-serif", 18),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..rows.len() as f64, (bottom..top).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(rows.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - i as f64 - 0.5).abs() < 1e-6 {
                rows.get(i).map_or(String::new(), |(name, _)| name.clone())
            } else {
                String::new()
            }
        })
        .y_desc("int8 / baseline (log scale)")
        .y_label_formatter(&|y| format!("{y:.1}x"))
        .draw()?;
    for (m, (label, _, _)) in METRICS.iter().enumerate() {
        let color = COLORS[m];
        chart
            .draw_series(
                rows.iter()
                    .enumerate()
                    .filter(|(_, (_, r))| r[m] > 0.0)
                    .map(|(i, (_, r))| {
                        let left = i as f64 + 0.1 + 0.16 * m as f64;
                        Rectangle::new(
                            [(left, bottom), (left + 0.15, r[m].max(bottom))],
                            color.filled(),
                        )
                    }),
            )?
            .label(*label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        chart.draw_series(
            rows.iter()
                .enumerate()
                .filter(|(_, (_, r))| r[m] > 0.0)
                .map(|(i, (_, r))| {
                    let left = i as f64 + 0.1 + 0.16 * m as f64;
                    Text::new(
                        format!("{:.2}", r[m]),
                        (left, r[m].max(bottom) * 1.12),
                        ("sans-serif", 12),
                    )
                }),
        )?;
    }
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(0.0, 1.0), (rows.len() as f64, 1.0)],
        BLACK,
    )))?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    println!("wrote {output} ({} backends)", rows.len());
    Ok(())
}
