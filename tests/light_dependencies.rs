//! The library a Burn user adds stays light: with one backend feature, `burn-int8` pulls in
//! none of the Gemma3 demo's dependencies (CLI, progress bars, tokenizer, GGUF, mmap) and no GPU
//! stack unless that feature asks for one. Checked on the resolved graph, as `cargo tree` sees
//! it for a crate that depends on `burn-int8` alone.

use std::collections::BTreeSet;

use burn_int8_testkit::normal_dependencies as graph;

/// The crates in `burn-int8`'s normal dependency graph with `features` (no default features),
/// down to `depth` (1: its direct dependencies).
fn dependencies_to(depth: usize, features: &str) -> BTreeSet<String> {
    let depth = depth.to_string();
    graph(
        "burn-int8",
        &[
            "--no-default-features",
            "--features",
            features,
            "--depth",
            &depth,
        ],
    )
}

fn normal_dependencies(features: &str) -> BTreeSet<String> {
    dependencies_to(1_000, features)
}

const DEMO_ONLY: [&str; 8] = [
    "clap",
    "indicatif",
    "tokenizers",
    "tracing-subscriber",
    "burn-int8-gguf",
    "burn-int8-tokenizer",
    "burn-int8-gemma3",
    "plotters",
];

#[test]
fn one_cpu_backend_pulls_in_no_demo_and_no_gpu_crates() {
    for feature in ["flex", "ndarray"] {
        let crates = normal_dependencies(feature);
        assert!(
            crates.contains("burn-int8-derive"),
            "{feature}: the graph was not read ({} crates)",
            crates.len()
        );
        for name in DEMO_ONLY.iter().chain(&["wgpu", "cubecl-cuda", "cudarc"]) {
            assert!(
                !crates.contains(*name),
                "burn-int8 with `{feature}` depends on {name}"
            );
        }
    }
}

#[test]
fn the_wgpu_feature_pulls_in_wgpu_and_still_no_demo_crates() {
    let crates = normal_dependencies("wgpu");
    assert!(crates.contains("wgpu"), "the check would not see wgpu");
    for name in DEMO_ONLY {
        assert!(
            !crates.contains(name),
            "burn-int8 with `wgpu` depends on {name}"
        );
    }
}

/// memmap2 is burn-store's own (its `std` feature memory-maps records when loading), never a
/// dependency of this crate.
#[test]
fn memmap2_only_through_burn_store() {
    let direct = dependencies_to(1, "flex");
    assert!(
        direct.contains("burn-store"),
        "the direct dependencies were not read: {direct:?}"
    );
    assert!(
        !direct.contains("memmap2"),
        "burn-int8 depends on memmap2 itself"
    );
}
