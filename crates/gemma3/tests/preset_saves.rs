//! Preset saves that cannot lose a preset, and the checksum that catches a corrupt one. Uses a
//! tiny synthetic Gemma3, so it always runs. (What the CLI says about such presets is
//! crates/cli/tests/preset_saves.rs.)
//!
//! Interrupted saves are made deterministic with the test hook `BURN_INT8_SAVE_ABORT_AT` (the
//! `fault-injection` feature of burn-int8, on for this crate's tests only): this test binary
//! runs itself again as a child (`--exact preset_saves::child_saver`) that saves with the hook
//! set and aborts at the named step.

use crate::gemma3_common::tiny::{norm_of, tiny};

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::backend::Flex;
use burn_int8::QuantizeExt;
use burn_int8::io::atomic::{SAVE_ABORT_AT_ENV, SAVE_FAIL_AT_ENV, SAVE_NO_EXCHANGE_ENV};
use burn_int8_gemma3::preset::{
    self, CHECKSUMS_FILE, CONFIG_FILE, PresetOptions, WEIGHTS_FILE, from_preset, from_preset_with,
    save_to_preset,
};
use burn_int8_gemma3::{self as gemma3, Gemma3Error};

/// Tells [`child_saver`] where to save; without it, that test does nothing.
const CHILD_SAVE_ENV: &str = "BURN_INT8_TEST_CHILD_SAVE_DIR";

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!(
        "burn-int8-preset-saves-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    root
}

/// The `.NAME.tmp-*` and `.NAME.old-*` siblings of `dir`.
fn leftovers(dir: &Path) -> Vec<String> {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let (tmp, old) = (format!(".{name}.tmp-"), format!(".{name}.old-"));
    let mut found: Vec<String> = std::fs::read_dir(dir.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|file| file.starts_with(&tmp) || file.starts_with(&old))
        .collect();
    found.sort();
    found
}

/// A JSON file of a preset, parsed.
fn json_of(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every file of a preset directory with its bytes.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            (
                entry.file_name().to_string_lossy().into_owned(),
                std::fs::read(entry.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// The aborts of the test hook should not leave core files around.
#[cfg(target_os = "linux")]
fn no_core_dumps() {
    let none = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `none` is a valid rlimit that outlives the call.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &none);
    }
}

#[cfg(not(target_os = "linux"))]
fn no_core_dumps() {}

/// Runs [`child_saver`] in a child process: saves the seed-2 model over `dir` with `env` set.
fn run_child_save(dir: &Path, env: &[(&str, &str)]) -> std::process::Output {
    child_save_command(dir, env).output().unwrap()
}

/// [`run_child_save`] without waiting, output discarded.
fn spawn_child_save(dir: &Path) -> std::process::Child {
    use std::process::Stdio;
    child_save_command(dir, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn child_save_command(dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    // The test's name in the one integration binary: `preset_saves::child_saver`.
    let module = module_path!()
        .split_once("::")
        .map_or(module_path!(), |(_, path)| path);
    command
        .args(["--exact", &format!("{module}::child_saver"), "--nocapture"])
        .env(CHILD_SAVE_ENV, dir);
    for name in [SAVE_ABORT_AT_ENV, SAVE_FAIL_AT_ENV, SAVE_NO_EXCHANGE_ENV] {
        command.env_remove(name);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// Not a test on its own: the saver the other tests run as a child process (it does nothing
/// unless [`CHILD_SAVE_ENV`] is set). Saves the seed-2 model over the directory named there.
#[test]
fn child_saver() {
    let Some(dir) = std::env::var_os(CHILD_SAVE_ENV) else {
        return;
    };
    no_core_dumps();
    let (model, tokenizer) = tiny(2);
    save_to_preset(&model, &tokenizer, Path::new(&dir), true).unwrap();
}

/// A save of a new preset over an old one, aborted at each step (with the atomic exchange, and
/// with the two-rename fallback): the preset at the path still loads and verifies, and the
/// next save leaves nothing behind.
#[cfg(target_os = "linux")]
#[test]
fn a_save_killed_at_any_step_leaves_a_preset_that_loads() {
    use std::os::unix::process::ExitStatusExt;
    let root = scratch("killed");
    let dir = root.join("preset");
    let (old_model, tokenizer) = tiny(1);
    let (new_model, _) = tiny(2);
    let (old_norm, new_norm) = (norm_of(&old_model), norm_of(&new_model));
    assert_ne!(old_norm, new_norm);
    // (step, two-rename fallback, which preset is at `dir` after the kill)
    let cases = [
        ("filled", false, "old"),
        ("swapped", false, "new"),
        ("filled", true, "old"),
        ("first-rename", true, "old"),
        ("swapped", true, "new"),
    ];
    for (step, fallback, expected) in cases {
        let case = format!("{step}{}", if fallback { " (two renames)" } else { "" });
        save_to_preset(&old_model, &tokenizer, &dir, true).unwrap();
        assert!(leftovers(&dir).is_empty(), "{case}: {:?}", leftovers(&dir));
        let mut env = vec![(SAVE_ABORT_AT_ENV, step)];
        if fallback {
            env.push((SAVE_NO_EXCHANGE_ENV, "1"));
        }
        let output = run_child_save(&dir, &env);
        assert!(
            output.status.signal().is_some(),
            "{case}: the child save was not killed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            !leftovers(&dir).is_empty(),
            "{case}: the killed save left nothing to clean up?"
        );
        if step == "first-rename" {
            assert!(
                !dir.exists(),
                "{case}: the old preset should be aside, none at {}",
                dir.display()
            );
        }
        if step == "swapped" && !fallback {
            // The exchange itself, not two renames: the old preset is where the new one was
            // written (`.NAME.tmp-PID`), and nothing was ever moved to `.NAME.old-PID`.
            let left = leftovers(&dir);
            assert!(
                left.len() == 1 && left[0].starts_with(".preset.tmp-"),
                "{case}: {left:?}"
            );
            let (aside, _) =
                from_preset::<Flex>(&root.join(&left[0]), &Default::default()).unwrap();
            assert_eq!(
                norm_of(&aside),
                old_norm,
                "{case}: the exchanged-out copy is the old preset"
            );
        }

        // The preset at `dir` loads, checksum verified (after moving the old copy back when
        // the kill came between the two renames).
        let (loaded, _) = from_preset::<Flex>(&dir, &Default::default())
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        let norm = norm_of(&loaded);
        assert!(
            norm == old_norm || norm == new_norm,
            "{case}: neither the old nor the new preset"
        );
        let found = if norm == new_norm { "new" } else { "old" };
        assert_eq!(found, expected, "{case}");
        drop(loaded);

        // The next save cleans up after the dead one.
        save_to_preset(&new_model, &tokenizer, &dir, true).unwrap();
        assert!(
            leftovers(&dir).is_empty(),
            "{case}: {:?} left behind",
            leftovers(&dir)
        );
        let (loaded, _) = from_preset::<Flex>(&dir, &Default::default()).unwrap();
        assert_eq!(norm_of(&loaded), new_norm, "{case}");
    }

    // A kill between the two renames is also recovered by the next save, not only a load.
    save_to_preset(&old_model, &tokenizer, &dir, true).unwrap();
    let output = run_child_save(
        &dir,
        &[
            (SAVE_ABORT_AT_ENV, "first-rename"),
            (SAVE_NO_EXCHANGE_ENV, "1"),
        ],
    );
    assert!(
        output.status.signal().is_some(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!dir.exists());
    let error = save_to_preset(&new_model, &tokenizer, &dir, false)
        .expect_err("the recovered preset exists");
    assert!(error.to_string().contains("exists"), "{error}");
    let (loaded, _) = from_preset::<Flex>(&dir, &Default::default()).unwrap();
    assert_eq!(norm_of(&loaded), old_norm);
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
    std::fs::remove_dir_all(&root).ok();
}

/// config.json records the weights' xxh3-64; a flipped byte in model.bpk is a checksum error
/// unless verification is turned off; a preset without a checksum (saved before them) still
/// loads.
#[test]
fn a_flipped_byte_in_the_weights_is_a_checksum_error() {
    let root = scratch("flipped");
    let dir = root.join("preset");
    let (model, tokenizer) = tiny(1);
    save_to_preset(&model, &tokenizer, &dir, false).unwrap();
    let config_path = dir.join(CONFIG_FILE);
    let config = json_of(&config_path);
    let recorded = config["burn_int8"]["weights_xxh3"]
        .as_str()
        .expect("burn_int8.weights_xxh3")
        .to_string();
    assert!(
        recorded.len() == 16 && recorded.bytes().all(|b| b.is_ascii_hexdigit()),
        "{recorded}"
    );
    let weights = dir.join(WEIGHTS_FILE);
    assert_eq!(preset::weights_checksum(&weights).unwrap(), recorded);
    from_preset::<Flex>(&dir, &Default::default()).unwrap();

    let mut bytes = std::fs::read(&weights).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xFF;
    std::fs::write(&weights, &bytes).unwrap();
    match from_preset::<Flex>(&dir, &Default::default()) {
        Err(Gemma3Error::Checksum {
            path,
            expected,
            found,
        }) => {
            assert_eq!(path, weights);
            assert_eq!(expected, recorded);
            assert_ne!(found, recorded);
        }
        Err(other) => panic!("expected a checksum error, got: {other}"),
        Ok(_) => panic!("a corrupt preset loaded"),
    }
    let error = gemma3::load_model::<Flex>(&dir, false, &Default::default(), |_| {})
        .expect_err("a corrupt preset loaded");
    assert!(matches!(error, Gemma3Error::Checksum { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("corrupt")
            && message.contains(WEIGHTS_FILE)
            && message.contains("verify_checksum"),
        "{message}"
    );
    eprintln!("{message}");
    // Opted out, the flipped weight loads as it is.
    let unverified = from_preset_with::<Flex>(
        &dir,
        &Default::default(),
        PresetOptions {
            verify_checksum: false,
        },
    );
    assert!(unverified.is_ok(), "{:?}", unverified.err());
    drop(unverified);

    // The CLI refuses it unless `--no-verify`: tests/preset_saves.rs of crates/cli.

    // A preset of an earlier version, without checksums.json: its config.json's checksum of
    // the weights is verified...
    std::fs::remove_file(dir.join(CHECKSUMS_FILE)).unwrap();
    assert!(matches!(
        from_preset::<Flex>(&dir, &Default::default()),
        Err(Gemma3Error::Checksum { .. })
    ));
    // ...and one without any checksum loads (with a warning that it cannot be verified).
    bytes[middle] ^= 0xFF;
    std::fs::write(&weights, &bytes).unwrap();
    let mut config = config;
    let _ = config["burn_int8"]
        .as_object_mut()
        .unwrap()
        .remove("weights_xxh3");
    std::fs::write(&config_path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    let (loaded, _) = from_preset::<Flex>(&dir, &Default::default()).unwrap();
    assert_eq!(norm_of(&loaded), norm_of(&model));
    std::fs::remove_dir_all(&root).ok();
}

/// The checksum is xxh3-64 as its reference implementation computes it (values from the C
/// library through Python's `xxhash` 4.1.0), also across the 1 MiB chunks it is read in.
#[test]
fn checksums_are_the_reference_xxh3() {
    let root = scratch("xxh3");
    let empty = root.join("empty");
    std::fs::write(&empty, b"").unwrap();
    assert_eq!(
        preset::weights_checksum(&empty).unwrap(),
        "2d06800538d394c2"
    );
    // bytes((i * 31 + 7) % 251 for i in range(3 * 1024 * 1024 + 17))
    let long = root.join("long");
    std::fs::write(
        &long,
        (0..3 * 1024 * 1024 + 17)
            .map(|i: usize| ((i * 31 + 7) % 251) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    assert_eq!(preset::weights_checksum(&long).unwrap(), "5384e0bd85749ef1");
    std::fs::remove_dir_all(&root).ok();
}

/// Every file of a preset is covered: a hand edit of a config.json scalar the record does not
/// hold (`rms_norm_eps`, which would silently change the model) and a flipped byte in the
/// tokenizer are checksum errors naming the file; opted out, the edit is loaded as written.
#[test]
fn edits_and_flips_anywhere_in_a_preset_are_checksum_errors() {
    let root = scratch("edited");
    let dir = root.join("preset");
    let (model, tokenizer) = tiny(1);
    save_to_preset(&model, &tokenizer, &dir, false).unwrap();
    let manifest = json_of(&dir.join(CHECKSUMS_FILE));
    let listed: Vec<&str> = manifest["files"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        listed,
        [CONFIG_FILE, WEIGHTS_FILE, "tokenizer.vocab.json"],
        "{manifest}"
    );
    assert_eq!(manifest["algorithm"], "xxh3-64");
    let pristine = snapshot(&dir);

    let config_path = dir.join(CONFIG_FILE);
    let mut config = json_of(&config_path);
    config["rms_norm_eps"] = 1e-3.into();
    std::fs::write(&config_path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    match from_preset::<Flex>(&dir, &Default::default()) {
        Err(Gemma3Error::Checksum { path, .. }) => assert_eq!(path, config_path),
        other => panic!("an edited config.json: {:?}", other.err()),
    }
    let (edited, _) = from_preset_with::<Flex>(
        &dir,
        &Default::default(),
        PresetOptions {
            verify_checksum: false,
        },
    )
    .unwrap();
    assert_eq!(edited.config.rms_norm_eps, 1e-3);

    for (name, bytes) in &pristine {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    from_preset::<Flex>(&dir, &Default::default()).unwrap();
    let vocab_path = dir.join("tokenizer.vocab.json");
    let mut vocab = std::fs::read(&vocab_path).unwrap();
    let at = vocab.iter().position(|&b| b == b'a').unwrap();
    vocab[at] = b'c';
    std::fs::write(&vocab_path, &vocab).unwrap();
    match from_preset::<Flex>(&dir, &Default::default()) {
        Err(Gemma3Error::Checksum { path, .. }) => assert_eq!(path, vocab_path),
        other => panic!("a flipped tokenizer byte: {:?}", other.err()),
    }

    // A manifest that names a file outside the preset is refused, not followed.
    for (name, bytes) in &pristine {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let mut hostile = manifest.clone();
    hostile["files"]["../outside"] = "0000000000000000".into();
    std::fs::write(dir.join(CHECKSUMS_FILE), hostile.to_string()).unwrap();
    match from_preset::<Flex>(&dir, &Default::default()) {
        Err(Gemma3Error::Format { path, message }) => assert!(
            path.ends_with(CHECKSUMS_FILE) && message.contains("../outside"),
            "{message}"
        ),
        other => panic!("a manifest naming ../outside: {:?}", other.err()),
    }
    std::fs::remove_dir_all(&root).ok();
}

/// A preset whose config.json says float32 over an int8 model.bpk (or the reverse) disagrees
/// with itself: a `PresetMismatch` naming `burn_int8.precision`.
#[test]
fn a_preset_whose_precision_disagrees_with_its_record_names_the_field() {
    let root = scratch("precision");
    let dir = root.join("preset");
    let (mut model, tokenizer) = tiny(1);
    model.quantize_int8().unwrap();
    save_to_preset(&model, &tokenizer, &dir, false).unwrap();
    let config_path = dir.join(CONFIG_FILE);
    let mut config = json_of(&config_path);
    config["burn_int8"]["precision"] = "float32".into();
    std::fs::write(&config_path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    let unverified = PresetOptions {
        verify_checksum: false,
    };
    match from_preset_with::<Flex>(&dir, &Default::default(), unverified) {
        Err(Gemma3Error::PresetMismatch {
            field,
            config,
            record,
            ..
        }) => {
            assert_eq!(
                (field, config.as_str(), record.as_str()),
                ("burn_int8.precision", "float32", "int8 weights")
            );
        }
        other => panic!("a float32 config over int8 weights: {:?}", other.err()),
    }
    // The CLI names the field too: tests/preset_saves.rs of crates/cli.
    std::fs::remove_dir_all(&root).ok();
}

/// Saves killed at random moments, by SIGKILL from outside (no hook): the loop goes on until
/// several kills have landed inside a save (they left a `.NAME.tmp-PID` behind), so it cannot
/// pass without testing the window. After each, the path holds the old or the new preset,
/// verified, and the next save leaves nothing behind.
#[cfg(target_os = "linux")]
#[test]
fn saves_killed_at_random_moments_never_lose_the_preset() {
    use std::os::unix::process::ExitStatusExt;
    use std::time::Instant;
    let root = scratch("random-kill");
    let dir = root.join("preset");
    let (old_model, tokenizer) = tiny(1);
    let (old_norm, new_norm) = (norm_of(&old_model), norm_of(&tiny(2).0));
    save_to_preset(&old_model, &tokenizer, &dir, true).unwrap();
    // How long a whole child save takes; kills are spread uniformly over it.
    let started = Instant::now();
    assert!(run_child_save(&dir, &[]).status.success());
    let span = started.elapsed();
    save_to_preset(&old_model, &tokenizer, &dir, true).unwrap();

    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(std::process::id());
    let (mut hits, mut attempts) = (0, 0);
    while hits < 3 {
        attempts += 1;
        assert!(
            attempts <= 2000,
            "only {hits} of {attempts} random kills landed inside a save of {span:?}"
        );
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let delay = span.mul_f64((state % 10_000) as f64 / 10_000.0);
        let mut child = spawn_child_save(&dir);
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().unwrap();
        let left = leftovers(&dir);
        if status.signal().is_some() && !left.is_empty() {
            hits += 1;
            assert!(
                left.iter().all(|name| name.starts_with(".preset.tmp-")),
                "the exchange moves nothing to .old: {left:?}"
            );
        }
        let (loaded, _) = from_preset::<Flex>(&dir, &Default::default())
            .unwrap_or_else(|e| panic!("after a kill at {delay:?}: {e}"));
        let norm = norm_of(&loaded);
        assert!(
            norm == old_norm || norm == new_norm,
            "after a kill at {delay:?}: neither the old nor the new preset"
        );
        drop(loaded);
        save_to_preset(&old_model, &tokenizer, &dir, true).unwrap();
        assert!(
            leftovers(&dir).is_empty(),
            "{:?} left after the next save",
            leftovers(&dir)
        );
    }
    eprintln!(
        "{hits} of {attempts} random kills landed inside a save (a save takes {:?} in a child)",
        span
    );
    std::fs::remove_dir_all(&root).ok();
}

/// Overwriting a preset leaves no `.NAME.old-*`, with the exchange or the two renames; a
/// regular file or a directory that is not a preset is never replaced, overwrite or not; without
/// overwrite, an existing path is an error and is left as it was.
#[test]
fn overwrites_leave_nothing_behind_and_refusals_change_nothing() {
    let root = scratch("overwrite");
    let (model, tokenizer) = tiny(1);

    let afile = root.join("afile");
    std::fs::write(&afile, b"not a preset").unwrap();
    let error = save_to_preset(&model, &tokenizer, &afile, false)
        .expect_err("saved over a file without overwrite");
    assert!(
        error.to_string().contains("exists")
            && error.to_string().contains(&afile.display().to_string()),
        "{error}"
    );
    // With overwrite too: a file is not a preset.
    let error = save_to_preset(&model, &tokenizer, &afile, true)
        .expect_err("saved over a regular file with overwrite");
    assert!(
        error.to_string().contains("not a directory")
            && error.to_string().contains(&afile.display().to_string()),
        "{error}"
    );
    assert_eq!(std::fs::read(&afile).unwrap(), b"not a preset");
    assert!(leftovers(&afile).is_empty(), "{:?}", leftovers(&afile));

    // A directory holding a file a preset never has: refused with overwrite, naming it, and
    // left whole.
    let thesis = root.join("thesis");
    std::fs::create_dir_all(thesis.join("sub")).unwrap();
    std::fs::write(thesis.join("thesis.txt"), b"years of work").unwrap();
    std::fs::write(thesis.join("config.json"), b"{}").unwrap();
    let error = save_to_preset(&model, &tokenizer, &thesis, true)
        .expect_err("replaced a directory that is not a preset");
    assert!(
        error.to_string().contains("thesis.txt") && error.to_string().contains("not a preset"),
        "{error}"
    );
    assert_eq!(
        std::fs::read(thesis.join("thesis.txt")).unwrap(),
        b"years of work"
    );
    assert!(thesis.join("sub").is_dir() && leftovers(&thesis).is_empty());

    let file = root.join("preset");
    save_to_preset(&model, &tokenizer, &file, false).unwrap();
    save_to_preset(&model, &tokenizer, &file, true).unwrap();
    assert!(file.is_dir());
    from_preset::<Flex>(&file, &Default::default()).unwrap();
    assert!(leftovers(&file).is_empty(), "{:?}", leftovers(&file));

    // The same with the two-rename fallback (in a child: the switch is an environment variable).
    let second = root.join("another");
    save_to_preset(&model, &tokenizer, &second, false).unwrap();
    let output = run_child_save(&second, &[(SAVE_NO_EXCHANGE_ENV, "1")]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(second.is_dir());
    from_preset::<Flex>(&second, &Default::default()).unwrap();
    assert!(leftovers(&second).is_empty(), "{:?}", leftovers(&second));

    // A save that fails once the new preset is written (a test hook: an error, not a kill)
    // removes it: the old preset is unchanged and nothing is left.
    let before = snapshot(&file);
    let output = run_child_save(&file, &[(SAVE_FAIL_AT_ENV, "filled")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains(SAVE_FAIL_AT_ENV),
        "{stderr}"
    );
    assert_eq!(snapshot(&file), before);
    assert!(leftovers(&file).is_empty(), "{:?}", leftovers(&file));

    // Without overwrite onto a preset: an error, and nothing changes.
    let before = snapshot(&file);
    let (other, _) = tiny(2);
    let error = save_to_preset(&other, &tokenizer, &file, false)
        .expect_err("saved over a preset without overwrite");
    assert!(error.to_string().contains("exists"), "{error}");
    assert_eq!(snapshot(&file), before);
    assert!(leftovers(&file).is_empty(), "{:?}", leftovers(&file));

    // A parent that is a regular file: the error names it, and nothing is left.
    let blocker = root.join("blocker");
    std::fs::write(&blocker, b"a file").unwrap();
    let error = save_to_preset(&model, &tokenizer, &blocker.join("preset"), false)
        .expect_err("saved under a file");
    assert!(
        error.to_string().contains(&blocker.display().to_string()),
        "{error}"
    );
    assert_eq!(std::fs::read(&blocker).unwrap(), b"a file");
    std::fs::remove_dir_all(&root).ok();
}

/// A preset keeps each layer's int8 format (`burn_int8.formats` in config.json) and loads in
/// it: a rotated model comes back rotated, with the same logits bit for bit.
#[test]
fn a_preset_keeps_each_layers_int8_format() {
    use burn_int8::{Int8Format, QuantizeConfig, Rotation, Scheme};
    let (mut model, tokenizer) = tiny(5);
    model
        .quantize_with(&QuantizeConfig::default().rotate(Rotation::Hadamard))
        .unwrap();
    let root = scratch("formats");
    let dir = root.join("preset");
    save_to_preset(&model, &tokenizer, &dir, false).unwrap();
    let formats = &json_of(&dir.join("config.json"))["burn_int8"]["formats"];
    assert_eq!(formats["layers.0.mlp.down_proj"], "keras+hadamard");
    assert_eq!(formats["embed_tokens.shards.0"], "keras+hadamard");
    let (reloaded, _) = from_preset::<Flex>(&dir, &Default::default()).unwrap();
    let rotated = Int8Format::new(Scheme::Keras, Rotation::Hadamard);
    assert!(reloaded.int8_formats().values().all(|f| *f == rotated));
    assert_eq!(reloaded.int8_formats(), model.int8_formats());
    let ids = [2, 40, 41, 42, 7];
    assert_eq!(
        crate::gemma3_common::gemma3_logits_all(&reloaded, &ids),
        crate::gemma3_common::gemma3_logits_all(&model, &ids)
    );
    std::fs::remove_dir_all(&root).unwrap();
}
