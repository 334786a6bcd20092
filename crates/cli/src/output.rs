//! Where results go: stdout (whose errors name it and never panic), stderr notes (which a
//! full or closed stderr cannot turn into a panic), and `--out` paths, which are written
//! atomically when they are (or will be) regular files, written through as streams when they
//! are FIFOs or devices (`/dev/stdout`, `-`), and refused otherwise: never renamed over.

use std::fmt::Display;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn_int8::io::atomic::{self, OutputKind};

use crate::Error;

/// `eprintln!` that cannot panic: a note on stderr, dropped if stderr is full or closed (there
/// is nowhere else to say it; the exit status still tells).
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
pub(crate) use note;

/// An error writing to stdout, naming it (a full disk or `/dev/full` behind it).
pub fn stdout_error(error: std::io::Error) -> Error {
    format!("writing to stdout: {error}").into()
}

/// `println!` that returns an error naming stdout instead of panicking.
pub fn out(line: impl Display) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .map_err(stdout_error)
}

/// How an `--out FILE` is written, decided before the model loads.
pub enum OutFile {
    /// `-`: stdout.
    Stdout,
    /// A FIFO, a device or a link to one: opened and written through, never replaced.
    Stream(PathBuf),
    /// A regular file or nothing yet: written to a temporary sibling, renamed into place.
    Atomic(PathBuf),
}

impl OutFile {
    /// Checks `--out` (named `option` in messages): `-`, a new path in a directory that
    /// exists, a regular file, or a stream; a directory, a link to a file or a directory, a
    /// parent that is a file or missing are errors naming the path and what is there.
    pub fn check(option: &str, out: &Path) -> Result<OutFile, Error> {
        if out.as_os_str() == "-" {
            return Ok(OutFile::Stdout);
        }
        match OutputKind::of(out) {
            OutputKind::Stream(_) => return Ok(OutFile::Stream(out.into())),
            OutputKind::Other(what) => {
                return Err(format!(
                    "{option} {}: is {what}; expected a regular file path (or - for stdout), \
                     and it is never replaced",
                    out.display()
                )
                .into());
            }
            OutputKind::RegularFile => return Ok(OutFile::Atomic(out.into())),
            OutputKind::Missing => {}
        }
        let parent = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        match std::fs::metadata(parent) {
            Ok(meta) if meta.is_dir() => Ok(OutFile::Atomic(out.into())),
            Ok(_) => Err(format!(
                "{option} {}: its parent {} is a file, not a directory",
                out.display(),
                parent.display()
            )
            .into()),
            Err(_) => Err(format!(
                "{option} {}: its directory {} does not exist",
                out.display(),
                parent.display()
            )
            .into()),
        }
    }

    /// Writes through `write`, given a buffered writer: atomically, or straight into the
    /// stream; errors name the option and the path (or stdout).
    pub fn write(
        &self,
        option: &str,
        write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<(), Error> {
        match self {
            OutFile::Stdout => {
                let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
                write(&mut stdout)
                    .and_then(|()| stdout.flush())
                    .map_err(stdout_error)
            }
            OutFile::Stream(path) => {
                // No truncation, no rename: a FIFO or a device is written as it is.
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| format!("{option} {}: {e}", path.display()))?;
                let mut writer = std::io::BufWriter::new(file);
                write(&mut writer)
                    .and_then(|()| writer.flush())
                    .map_err(|e| format!("{option} {}: writing: {e}", path.display()).into())
            }
            OutFile::Atomic(path) => atomic::write_file::<Error>(path, |tmp| {
                let file = std::fs::File::create(tmp)
                    .map_err(|e| format!("creating {}: {e}", tmp.display()))?;
                let mut writer = std::io::BufWriter::new(file);
                write(&mut writer)
                    .and_then(|()| writer.flush())
                    .map_err(|e| format!("writing {}: {e}", tmp.display()).into())
            })
            .map_err(|e| format!("{option} {}: {e}", path.display()).into()),
        }
    }

    /// What to call it in the final note.
    pub fn name(&self) -> String {
        match self {
            OutFile::Stdout => "stdout".into(),
            OutFile::Stream(path) | OutFile::Atomic(path) => path.display().to_string(),
        }
    }
}

/// The header of a safetensors file holding one F32 tensor `name` of `shape`: the 8-byte
/// little-endian header length, then the JSON header padded with spaces to 8 bytes, as the
/// `safetensors` crate writes it. Written by hand so the data can follow in chunks (the
/// crate's serializer takes the whole tensor in memory).
pub fn safetensors_f32_header(name: &str, shape: &[usize]) -> Vec<u8> {
    let bytes = shape.iter().product::<usize>() * 4;
    let mut json = serde_json::json!({
        name: {"dtype": "F32", "shape": shape, "data_offsets": [0, bytes]}
    })
    .to_string();
    while !json.len().is_multiple_of(8) {
        json.push(' ');
    }
    let mut header = (json.len() as u64).to_le_bytes().to_vec();
    header.extend_from_slice(json.as_bytes());
    header
}
