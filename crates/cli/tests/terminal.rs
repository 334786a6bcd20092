//! `generate` run by a person in a terminal, on the real checkpoint: the screen it leaves shows
//! the prompt and the continuation (a progress bar's redraws, `\r` and erase-line, once wiped
//! the streamed text, and its final clear left an empty line). The command runs under a
//! pseudo-terminal (`script`), and its output is replayed through a terminal emulator (`vt100`)
//! to read the screen as a person would see it.

use crate::gemma3_common::gemma3_checkpoint as checkpoint;

use std::process::Command;

const BINARY: &str = env!("CARGO_BIN_EXE_burn-int8");

/// `'…'` for `sh -c`.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[test]
fn generate_in_a_terminal_leaves_the_answer_on_the_screen() {
    let Some(model) = checkpoint() else { return };
    let model = model.to_str().unwrap().to_string();
    let args = [
        "gemma3",
        "generate",
        "--max-length",
        "24",
        "--prompt",
        "Keras is a",
        "--model",
        &model,
    ];
    // What a pipe gets: the text the screen must show.
    let piped = Command::new(BINARY).args(args).output().unwrap();
    assert!(
        piped.status.success(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    let text = String::from_utf8(piped.stdout).unwrap();
    let text = text.trim_end();
    assert!(
        text.starts_with("Keras is a") && text.len() > "Keras is a".len() + 10,
        "{text:?}"
    );

    // The same command with stdout and stderr on one pseudo-terminal.
    let line = std::iter::once(BINARY)
        .chain(args)
        .map(quoted)
        .collect::<Vec<_>>()
        .join(" ");
    let tty = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("COLUMNS", "300")
        .output()
        .expect("`script` (util-linux) runs the command under a pseudo-terminal");
    assert!(
        tty.status.success(),
        "{}",
        String::from_utf8_lossy(&tty.stdout)
    );
    let mut terminal = vt100::Parser::new(40, 300, 0);
    terminal.process(&tty.stdout);
    let screen = terminal.screen().contents();
    // The text has no newline of its own at this length; the screen may wrap nothing at 300
    // columns, so it holds the text on one row.
    let shown: String = text.split('\n').next().unwrap().to_string();
    assert!(
        screen.contains(&shown),
        "the screen does not show the answer {shown:?}:\n{screen}\n(raw: {:?})",
        String::from_utf8_lossy(&tty.stdout)
    );
}
