//! `burn-int8-gemma3` is a library: with its default features it pulls in none of the command
//! line's dependencies (argument parsing, progress bars, a log subscriber), which live in
//! `crates/cli`. Checked on the resolved graph, as `cargo tree` sees it for a crate that
//! depends on `burn-int8-gemma3` alone.

use std::collections::BTreeSet;
use std::process::Command;

/// The crates in `burn-int8-gemma3`'s normal dependency graph with its default features.
fn normal_dependencies() -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest_dir =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let output = Command::new(cargo)
        .current_dir(&manifest_dir)
        .args([
            "tree",
            "--offline",
            "--package",
            "burn-int8-gemma3",
            "--edges",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .output()
        .expect("run cargo tree");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn the_default_features_pull_in_no_cli_crates() {
    let crates = normal_dependencies();
    assert!(
        crates.contains("burn-int8") && crates.contains("burn-int8-tokenizer"),
        "the graph was not read ({} crates)",
        crates.len()
    );
    for name in ["clap", "indicatif", "tracing-subscriber", "burn-int8-cli"] {
        assert!(!crates.contains(name), "burn-int8-gemma3 depends on {name}");
    }
}
