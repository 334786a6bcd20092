//! The CLI as a careless user meets it (issue 30): outputs that are not regular files we wrote
//! are written through or refused, never renamed over; `save --overwrite` replaces only a
//! preset; an interrupted save removes its temporary directory; closed and full pipes end
//! quietly or with an error naming them, never a panic; options that name nothing or sizes
//! that cannot fit are errors naming the option, before the model loads where it need not.
//! All on the tiny synthetic checkpoint (the terminal test, on the real one, is in
//! `terminal.rs`).

use crate::gemma3_common::tiny::{tiny, tiny_config, write_hf_dir};

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use burn_int8::io::atomic::SAVE_PAUSE_AT_ENV;
use burn_int8_gemma3::preset::{from_preset, save_to_preset};

const BINARY: &str = env!("CARGO_BIN_EXE_burn-int8");

/// A path no model is at: options checked before the load fail on their own, not on this.
const NO_MODEL: &str = "/nonexistent/burn-int8-no-model";

fn run(args: &[&str]) -> Output {
    Command::new(BINARY).args(args).output().unwrap()
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A failure with exit status 1 (an error, not a panic's 101), whose stderr contains every
/// one of `expected` and never a panic.
fn assert_error(output: &Output, expected: &[&str]) {
    let stderr = stderr_of(output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for text in expected {
        assert!(stderr.contains(text), "expected `{text}` in: {stderr}");
    }
}

fn mkfifo(path: &Path) {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a NUL-terminated path that lives across the call.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("burn-int8-cli-rel-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The logits tensor's shape in safetensors bytes.
fn logits_shape(bytes: &[u8]) -> Vec<usize> {
    let tensors = safetensors::SafeTensors::deserialize(bytes).unwrap();
    tensors.tensor("logits").unwrap().shape().to_vec()
}

/// `logits --out` onto a symbolic link, a directory or under a file is refused, naming what is
/// there, and leaves it as it was (today's code renamed its temporary file over the link);
/// onto a FIFO or `-` it is written through as a stream, and the FIFO stays a FIFO.
#[test]
fn logits_out_writes_through_streams_and_never_replaces_what_is_not_a_file() {
    let dir = write_hf_dir("cli-rel-logits", &tiny_config(), |_| {});
    let model = dir.to_str().unwrap();
    let logits = |out: &Path| {
        run(&[
            "gemma3",
            "logits",
            "--model",
            model,
            "--tokens",
            "2,260",
            "--out",
            out.to_str().unwrap(),
        ])
    };

    // A symbolic link to a file: refused, the link and its target unchanged.
    let target = dir.join("precious.txt");
    std::fs::write(&target, b"precious").unwrap();
    let link = dir.join("link.safetensors");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    assert_error(&logits(&link), &[link.to_str().unwrap(), "symbolic link"]);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");

    // A directory: refused, naming it.
    let subdir = dir.join("adir");
    std::fs::create_dir_all(subdir.join("inside")).unwrap();
    assert_error(&logits(&subdir), &[subdir.to_str().unwrap(), "directory"]);
    assert!(subdir.join("inside").is_dir());

    // A parent that is a file: said so (not "does not exist").
    let under_file = target.join("logits.safetensors");
    assert_error(&logits(&under_file), &["precious.txt", "is a file"]);

    // A FIFO: written through (a reader on the other end gets the whole safetensors file).
    let fifo = dir.join("logits.fifo");
    mkfifo(&fifo);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            std::fs::File::open(&fifo)
                .unwrap()
                .read_to_end(&mut bytes)
                .unwrap();
            bytes
        })
    };
    let output = logits(&fifo);
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(logits_shape(&reader.join().unwrap()), [2, 300]);
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );

    // `-`: stdout, the same bytes as a regular file gets.
    let output = logits(Path::new("-"));
    assert!(output.status.success(), "{}", stderr_of(&output));
    let file = dir.join("logits.safetensors");
    assert!(logits(&file).status.success());
    assert_eq!(output.stdout, std::fs::read(&file).unwrap());
    assert_eq!(logits_shape(&output.stdout), [2, 300]);

    // No temporary left anywhere.
    let temporaries: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".tmp"))
        .collect();
    assert!(temporaries.is_empty(), "{temporaries:?}");
    std::fs::remove_dir_all(&dir).ok();
}

/// The logits of more positions than one chunk, written chunk by chunk, equal one forward
/// pass over all of them (the library's, from an empty cache).
#[test]
fn logits_written_in_chunks_equal_one_pass() {
    let mut config = tiny_config();
    config.max_position_embeddings = 600;
    let dir = write_hf_dir("cli-rel-chunks", &config, |_| {});
    let ids: Vec<u32> = (0..520).map(|i| 260 + (i * 7 % 9) as u32).collect();
    let list = ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    let output = run(&[
        "gemma3",
        "logits",
        "--model",
        dir.to_str().unwrap(),
        "--tokens",
        &list,
        "--out",
        "-",
    ]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    let tensors = safetensors::SafeTensors::deserialize(&output.stdout).unwrap();
    let written: Vec<f32> = tensors
        .tensor("logits")
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let (model, _) = burn_int8_gemma3::load_model::<burn::backend::Flex>(
        &dir,
        false,
        &Default::default(),
        |_| {},
    )
    .unwrap();
    let whole = crate::gemma3_common::gemma3_logits_all(&model, &ids);
    assert_eq!(written.len(), whole.len());
    let worst = written
        .iter()
        .zip(&whole)
        .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
        .fold(0.0f32, f32::max);
    assert!(
        worst < 1e-4,
        "chunked logits differ from one pass by {worst}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `save --overwrite` onto a directory that is not a preset (a thesis in it) refuses, naming
/// what is there, and deletes nothing; onto a preset it replaces it.
#[test]
fn save_overwrite_replaces_only_a_preset() {
    let root = scratch("save");
    let source = root.join("source");
    let (model, tokenizer) = tiny(1);
    save_to_preset(&model, &tokenizer, &source, false).unwrap();
    let thesis = root.join("thesis");
    std::fs::create_dir_all(thesis.join("sub")).unwrap();
    std::fs::write(thesis.join("thesis.txt"), b"four years").unwrap();
    let save = |out: &Path| {
        run(&[
            "gemma3",
            "save",
            "--model",
            source.to_str().unwrap(),
            "--overwrite",
            "--out",
            out.to_str().unwrap(),
        ])
    };
    assert_error(&save(&thesis), &["thesis.txt", "not a preset"]);
    assert_eq!(
        std::fs::read(thesis.join("thesis.txt")).unwrap(),
        b"four years"
    );
    assert!(thesis.join("sub").is_dir());
    // `export-hf` never replaces anything.
    let output = run(&[
        "gemma3",
        "export-hf",
        "--model",
        source.to_str().unwrap(),
        "--out",
        thesis.to_str().unwrap(),
    ]);
    assert_error(&output, &["thesis", "exists"]);
    assert!(thesis.join("thesis.txt").is_file() && thesis.join("sub").is_dir());
    // A regular file is not a preset either.
    let file = root.join("notes.txt");
    std::fs::write(&file, b"notes").unwrap();
    assert_error(&save(&file), &["notes.txt", "not a directory"]);
    assert_eq!(std::fs::read(&file).unwrap(), b"notes");
    // A preset is replaced.
    let preset = root.join("preset");
    save_to_preset(&tiny(2).0, &tokenizer, &preset, false).unwrap();
    let output = save(&preset);
    assert!(output.status.success(), "{}", stderr_of(&output));
    from_preset::<burn::backend::Flex>(&preset, &Default::default()).unwrap();
    std::fs::remove_dir_all(&root).ok();
}

/// SIGINT or SIGTERM during a save (paused by the test hook once the new preset is written,
/// so the signal lands inside the save every time): the process dies by the signal, its
/// temporary directory is gone at once (not at the next save), the old preset is intact.
#[test]
fn an_interrupted_save_removes_its_temporary_directory() {
    let root = scratch("interrupt");
    let (model, tokenizer) = tiny(1);
    let source = root.join("source");
    save_to_preset(&model, &tokenizer, &source, false).unwrap();
    let target = root.join("target");
    save_to_preset(&tiny(2).0, &tokenizer, &target, false).unwrap();
    let before = std::fs::read(target.join("model.bpk")).unwrap();
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let mut child = Command::new(BINARY)
            .args(["gemma3", "save", "--overwrite", "--model"])
            .arg(&source)
            .arg("--out")
            .arg(&target)
            .env(SAVE_PAUSE_AT_ENV, "filled")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        let mut line = String::new();
        while stderr.read_line(&mut line).unwrap() > 0 {
            seen.push_str(&line);
            if line.contains("paused") {
                break;
            }
            line.clear();
        }
        assert!(seen.contains("paused"), "the save never paused: {seen}");
        let temporaries = || -> Vec<String> {
            std::fs::read_dir(&root)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with(".target.tmp-"))
                .collect()
        };
        assert_eq!(temporaries().len(), 1, "no temporary while paused?");
        // SAFETY: a plain kill(2) of our own child.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        let _ = stderr.read_to_string(&mut seen);
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(signal), "{status}: {seen}");
        assert!(temporaries().is_empty(), "{:?} left: {seen}", temporaries());
        assert_eq!(std::fs::read(target.join("model.bpk")).unwrap(), before);
    }
    std::fs::remove_dir_all(&root).ok();
}

/// A tiny HF checkpoint and a text for `eval` on it.
fn eval_inputs(name: &str) -> (PathBuf, PathBuf) {
    let dir = write_hf_dir(name, &tiny_config(), |_| {});
    let text = dir.join("text.txt");
    std::fs::write(&text, "ab a abba b ba ".repeat(20)).unwrap();
    (dir, text)
}

fn eval_command(dir: &Path, text: &Path) -> Command {
    let mut command = Command::new(BINARY);
    command
        .args(["gemma3", "eval", "--context", "16", "--json", "--model"])
        .arg(dir)
        .arg("--text")
        .arg(text);
    command
}

/// A closed stdout ends `eval` and `generate` quietly (exit 0, or killed by SIGPIPE as Unix
/// tools are), never with a panic; a full stdout (`/dev/full`) is an error naming stdout; a
/// full stderr turns nothing into a panic either.
#[test]
fn closed_and_full_pipes_end_quietly_or_name_stdout() {
    let (dir, text) = eval_inputs("cli-rel-pipes");
    let generate = || {
        let mut command = Command::new(BINARY);
        command
            .args([
                "gemma3",
                "generate",
                "--max-length",
                "30",
                "--prompt",
                "ab a",
                "--model",
            ])
            .arg(&dir);
        command
    };
    for mut command in [eval_command(&dir, &text), generate()] {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader is gone before the first write
        let output = child.wait_with_output().unwrap();
        let stderr = stderr_of(&output);
        assert!(
            output.status.success() || output.status.signal() == Some(libc::SIGPIPE),
            "{}: {stderr}",
            output.status
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    for mut command in [eval_command(&dir, &text), generate()] {
        let output = command.stdout(full()).output().unwrap();
        assert_error(&output, &["stdout"]);
    }
    // An error (no such model) told to a full stderr: exit status 1, no panic (101).
    let output = Command::new(BINARY)
        .args(["gemma3", "generate", "--prompt", "ab", "--model", NO_MODEL])
        .stderr(full())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    std::fs::remove_dir_all(&dir).ok();
}

/// `--keep-float` naming no layer is an error listing the closest; an int8 preset cannot keep
/// a layer float and says so.
#[test]
fn keep_float_naming_no_layer_is_an_error() {
    let (dir, text) = eval_inputs("cli-rel-keep");
    for (name, closest) in [
        ("layers.99.mlp.down_proj", "mlp.down_proj"),
        // `*` stands for one segment: a pattern that matches no layer is still an error.
        ("layers.*.mlp.gate", "layers."),
        ("", "layers"),
    ] {
        let output = eval_command(&dir, &text)
            .args(["--keep-float", name])
            .output()
            .unwrap();
        assert_error(&output, &["--keep-float", &format!("`{name}`"), closest]);
    }
    // A real one works and is listed; so does a pattern that matches layers.
    let output = eval_command(&dir, &text)
        .args(["--keep-float", "layers.1.mlp.down_proj"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let output = eval_command(&dir, &text)
        .args(["--keep-float", "layers.*.mlp.down_proj"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    std::fs::remove_dir_all(&dir).ok();
}

/// Options that need no model are checked before it loads (the model path here does not
/// exist), and each error names the option and what was expected.
#[test]
fn options_are_checked_before_the_load_and_named() {
    let cases: &[(&[&str], &[&str])] = &[
        (&["bench", "--batch", "0"], &["--batch", "at least 1"]),
        (&["bench", "--batch", "1,0"], &["--batch", "at least 1"]),
        (
            &["bench", "--threads", "0"],
            &["--threads", "expected 1 to"],
        ),
        (&["bench", "--threads", "100000"], &["--threads", "cores"]),
        (
            &["eval", "--text", "/dev/null", "--chunks", "0"],
            &["--chunks", "at least 1"],
        ),
        (
            &["eval", "--text", "/dev/null", "--context", "-5"],
            &["--context", "-5"],
        ),
        (
            &["eval", "--text", "/dev/null", "--context", "2"],
            &["--context 2", "at least 4"],
        ),
        (
            &["eval", "--text", "/dev/null", "--threads", "0"],
            &["--threads"],
        ),
        (
            &["logits", "--out", "x.safetensors", "--tokens", "-1,2"],
            &["--tokens", "-1", "token id"],
        ),
        (
            &[
                "generate", "--prompt", "ab", "--prompt", "", "--prompt", "b",
            ],
            &["--prompt #2 of 3 is empty"],
        ),
        (&["generate", "--prompt", ""], &["--prompt is empty"]),
    ];
    for (args, expected) in cases {
        let output = Command::new(BINARY)
            .arg("gemma3")
            .args(*args)
            .args(["--model", NO_MODEL])
            .output()
            .unwrap();
        let stderr = stderr_of(&output);
        assert!(!output.status.success(), "{args:?}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains(NO_MODEL),
            "{args:?}: {stderr}"
        );
        assert!(
            !stderr.contains("unexpected argument"),
            "{args:?}: {stderr}"
        );
        for text in *expected {
            assert!(
                stderr.contains(text),
                "{args:?}: expected `{text}` in {stderr}"
            );
        }
    }
    // A prompt that is not UTF-8: the option is named.
    let output = Command::new(BINARY)
        .args(["gemma3", "generate", "--model", NO_MODEL, "--prompt"])
        .arg(OsStr::from_bytes(b"ab\xffc"))
        .output()
        .unwrap();
    assert_error(&output, &["--prompt", "UTF-8"]);
}

/// `logits` with more ids than the context names `--tokens` and does not claim a BOS it never
/// added.
#[test]
fn too_many_logits_tokens_name_the_option_without_a_bos() {
    let dir = write_hf_dir("cli-rel-tokens", &tiny_config(), |_| {});
    let list = vec!["260"; 100].join(",");
    let output = run(&[
        "gemma3",
        "logits",
        "--model",
        dir.to_str().unwrap(),
        "--tokens",
        &list,
        "--out",
        dir.join("l.safetensors").to_str().unwrap(),
    ]);
    assert_error(&output, &["--tokens", "100 ids", "64", "no BOS"]);
    assert!(!stderr_of(&output).contains("BOS included"));
    std::fs::remove_dir_all(&dir).ok();
}

/// The echoed prompt is the prompt as given: a control token in it (`<eos>`) stays, in the
/// streamed text and in `--json`'s `text`, which starts with `prompt`.
#[test]
fn the_echoed_prompt_is_the_prompt_as_given() {
    let dir = write_hf_dir("cli-rel-echo", &tiny_config(), |_| {});
    let model = dir.to_str().unwrap();
    let prompt = "ab<eos>a";
    let output = run(&[
        "gemma3",
        "generate",
        "--model",
        model,
        "--max-length",
        "12",
        "--prompt",
        prompt,
    ]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.starts_with(prompt), "{stdout:?}");
    let output = run(&[
        "gemma3",
        "generate",
        "--model",
        model,
        "--max-length",
        "12",
        "--json",
        "--prompt",
        prompt,
        "--prompt",
        "b",
    ]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    let first: serde_json::Value = serde_json::from_str(
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(first["prompt"], prompt);
    assert!(
        first["text"].as_str().unwrap().starts_with(prompt),
        "{first}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Finite weights whose forward pass overflows (a norm scaled to f32::MAX): `generate`, `logits`
/// and `eval` fail naming the first layer whose output is not finite, instead of exit 0.
#[test]
fn non_finite_logits_name_the_first_layer() {
    let dir = write_hf_dir("cli-rel-overflow", &tiny_config(), |tensors| {
        let norm = tensors
            .iter_mut()
            .find(|(n, _, _)| n == "model.layers.1.post_feedforward_layernorm.weight")
            .unwrap();
        norm.2.iter_mut().for_each(|v| *v = f32::MAX);
    });
    let model = dir.to_str().unwrap();
    let text = dir.join("text.txt");
    std::fs::write(&text, "ab a abba b ba ".repeat(20)).unwrap();
    for int8 in [false, true] {
        let mut args = vec!["gemma3", "generate", "--model", model, "--prompt", "ab a"];
        if int8 {
            args.push("--int8");
        }
        assert_error(&run(&args), &["non-finite", "`layers.1`"]);
    }
    let out = dir.join("l.safetensors");
    assert_error(
        &run(&[
            "gemma3",
            "logits",
            "--model",
            model,
            "--tokens",
            "2,260",
            "--out",
            out.to_str().unwrap(),
        ]),
        &["non-finite", "`layers.1`"],
    );
    assert!(!out.exists());
    assert_error(
        &eval_command(&dir, &text).output().unwrap(),
        &["non-finite", "`layers.1`"],
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Sizes a user controls: `--text` is read with a cap (`/dev/zero` ends with an error naming
/// it), a window or batch that cannot fit in memory is refused before allocating, and a FIFO
/// as `--text` says it is waiting for a writer.
#[test]
fn sizes_are_bounded_and_waits_are_announced() {
    let (dir, text) = eval_inputs("cli-rel-sizes");
    let output = eval_command(&dir, Path::new("/dev/zero")).output().unwrap();
    assert_error(&output, &["--text /dev/zero", "cap", "256 MiB"]);

    // A context the model allows but no machine holds (scores alone are petabytes).
    let mut config = tiny_config();
    config.max_position_embeddings = 1 << 24;
    let huge = write_hf_dir("cli-rel-huge", &config, |_| {});
    let output = Command::new(BINARY)
        .args([
            "gemma3",
            "eval",
            "--context",
            "10000000",
            "--chunks",
            "1",
            "--model",
        ])
        .arg(&huge)
        .arg("--text")
        .arg(&text)
        .output()
        .unwrap();
    assert_error(&output, &["--context 10000000", "GiB", "memory"]);
    let output = Command::new(BINARY)
        .args([
            "gemma3",
            "bench",
            "--batch",
            "1,100000000",
            "--new-tokens",
            "2",
            "--model",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    let stderr = stderr_of(&output);
    assert!(
        !output.status.success() && !stderr.contains("panicked"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--batch 100000000") && stderr.contains("memory"),
        "{stderr}"
    );

    // A FIFO: the wait is announced, then the text written into it is evaluated.
    let fifo = dir.join("text.fifo");
    mkfifo(&fifo);
    let mut child = eval_command(&dir, &fifo)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("FIFO") && line.contains("waiting"), "{line}");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .unwrap()
        .write_all(&std::fs::read(&text).unwrap())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(&huge).ok();
}
