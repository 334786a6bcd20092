//! `burn-int8-gemma3` is a library: with its default features it pulls in none of the command
//! line's dependencies (argument parsing, progress bars, a log subscriber), which live in
//! `crates/cli`. Checked on the resolved graph, as `cargo tree` sees it for a crate that
//! depends on `burn-int8-gemma3` alone.

use burn_int8_testkit::normal_dependencies;

#[test]
fn the_default_features_pull_in_no_cli_crates() {
    let crates = normal_dependencies("burn-int8-gemma3", &[]);
    assert!(
        crates.contains("burn-int8") && crates.contains("burn-int8-tokenizer"),
        "the graph was not read ({} crates)",
        crates.len()
    );
    for name in ["clap", "indicatif", "tracing-subscriber", "burn-int8-cli"] {
        assert!(!crates.contains(name), "burn-int8-gemma3 depends on {name}");
    }
}
