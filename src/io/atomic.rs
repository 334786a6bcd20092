//! Atomic writes: a file or a directory appears at its path complete or not at all, and an
//! existing one is replaced only by a complete new one.
//!
//! - [`write_file`]: the content is written to a temporary sibling `.NAME.tmp-PID`, synced,
//!   then renamed over the path; a failure removes the temporary file.
//! - [`write_dir`]: the same for a directory, whose replacement cannot be one rename. The new
//!   directory is filled and synced in `.NAME.tmp-PID`; on Linux one
//!   `renameat2(RENAME_EXCHANGE)` then swaps it with the old one, so the path holds a complete
//!   directory, old or new, whenever the process dies. Elsewhere, or on a filesystem without the
//!   exchange, two renames replace it (old to `.NAME.old-PID`, new into place): a process killed
//!   between them leaves nothing at the path for a moment, and the next write or
//!   [`recover_dir`] moves the old copy back. Each write first removes what dead writes left.
//!
//! With the test-only cargo feature `fault-injection`, [`SAVE_ABORT_AT_ENV`],
//! [`SAVE_FAIL_AT_ENV`] and [`SAVE_NO_EXCHANGE_ENV`] make [`write_dir`] abort or fail at a named
//! step, or skip the exchange; a normal build has no such hooks.

use std::path::{Path, PathBuf};

/// A failure of the atomic write itself (not of the caller's content); callers convert it
/// into their own error type (`From<AtomicError>`).
#[derive(Debug, thiserror::Error)]
pub enum AtomicError {
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The path ends in `..` or is a root: there is no name to put a sibling beside.
    #[error("{}: not a file or directory name to save to", path.display())]
    NoFileName { path: PathBuf },

    /// [`write_dir`] without `overwrite` onto something that exists.
    #[error("{} exists; pass overwrite to replace it", path.display())]
    Exists { path: PathBuf },

    /// [`write_dir`] with `overwrite` onto a path that holds something else than a directory
    /// (a file, a link, a FIFO, a device): only a directory is ever replaced by one.
    #[error("{} is {what}, not a directory; refusing to replace it", path.display())]
    NotADirectory { path: PathBuf, what: String },

    /// [`write_file`] onto a path that holds something else than a regular file (a directory,
    /// a link, a FIFO, a device): renaming over it would destroy it, so the write is refused.
    #[error("{} is {what}, not a regular file; refusing to replace it", path.display())]
    NotARegularFile { path: PathBuf, what: String },

    /// The `fault-injection` hook [`SAVE_FAIL_AT_ENV`] named this step.
    #[cfg(feature = "fault-injection")]
    #[error("{SAVE_FAIL_AT_ENV}={step}: the save fails here (test hook)")]
    InjectedFailure { path: PathBuf, step: &'static str },
}

/// Test hook (feature `fault-injection`): when this environment variable names the step a
/// [`write_dir`] has reached, the process aborts there (`std::process::abort`), to test
/// interrupted writes deterministically. Steps: `filled` (the new directory written and synced,
/// the old one untouched), `first-rename` (the two-rename fallback only: the old directory moved
/// aside, the new one not yet in place) and `swapped` (the new directory in place, the old copy
/// not yet removed).
#[cfg(feature = "fault-injection")]
pub const SAVE_ABORT_AT_ENV: &str = "BURN_INT8_SAVE_ABORT_AT";

/// Test hook (feature `fault-injection`): like [`SAVE_ABORT_AT_ENV`], but the write fails there
/// with [`AtomicError::InjectedFailure`] instead of aborting, to test that a failed write cleans
/// up after itself.
#[cfg(feature = "fault-injection")]
pub const SAVE_FAIL_AT_ENV: &str = "BURN_INT8_SAVE_FAIL_AT";

/// Test hook (feature `fault-injection`): like [`SAVE_ABORT_AT_ENV`], but the process prints
/// `BURN_INT8_SAVE_PAUSE_AT=STEP: paused` on stderr and waits there until it is killed, so a
/// test can send a signal at that step without guessing a delay.
#[cfg(feature = "fault-injection")]
pub const SAVE_PAUSE_AT_ENV: &str = "BURN_INT8_SAVE_PAUSE_AT";

/// Test hook (feature `fault-injection`): set to anything but `0` or the empty string,
/// [`write_dir`] replaces an existing directory with the two-rename fallback instead of the
/// atomic exchange (Linux), as on filesystems without `RENAME_EXCHANGE`.
#[cfg(feature = "fault-injection")]
pub const SAVE_NO_EXCHANGE_ENV: &str = "BURN_INT8_SAVE_NO_EXCHANGE";

/// Writes the file at `path` atomically: `fill` writes the content to the temporary path it is
/// given (a sibling `.NAME.tmp-PID`), which is then synced and renamed over `path`. An existing
/// file at `path` is left as it was until the rename; a failure removes the temporary file.
///
/// Only a regular file is ever replaced: a directory, a symbolic link, a FIFO or a device at
/// `path` is [`AtomicError::NotARegularFile`] and is left alone (a caller that wants to write
/// *through* a FIFO or a device opens it itself: see [`OutputKind`]).
pub fn write_file<E: From<AtomicError>>(
    path: &Path,
    fill: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let name = file_name(path)?;
    if let OutputKind::Other(what) | OutputKind::Stream(what) = OutputKind::of(path) {
        return Err(AtomicError::NotARegularFile {
            path: path.into(),
            what,
        }
        .into());
    }
    let temp = TempGuard::new(sibling(path, &name, "tmp"));
    let result = fill(temp.path()).and_then(|()| {
        std::fs::File::open(temp.path())
            .and_then(|file| file.sync_all())
            .map_err(|source| io(temp.path(), source))?;
        std::fs::rename(temp.path(), path).map_err(|source| io(path, source))?;
        Ok(())
    });
    if result.is_ok() {
        temp.keep();
    }
    result
}

/// What is at an output path, which decides how it may be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputKind {
    /// Nothing: a new file is written atomically.
    Missing,
    /// A regular file (not a link): replaced atomically by [`write_file`].
    RegularFile,
    /// A FIFO, a character device or a socket, directly or through links (`/dev/stdout`,
    /// `/dev/null`): to be written through, as a stream, never renamed over. The text says
    /// what it is.
    Stream(String),
    /// Anything else (a directory, a link to a regular file or a directory, a dangling link,
    /// a block device): to be refused. The text says what it is.
    Other(String),
}

impl OutputKind {
    /// Looks at `path` without following a final link, then (for a link) at its target.
    pub fn of(path: &Path) -> OutputKind {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return OutputKind::Missing;
        };
        let kind = meta.file_type();
        if kind.is_file() {
            return OutputKind::RegularFile;
        }
        if kind.is_dir() {
            return OutputKind::Other("a directory".into());
        }
        let stream = special_stream_kind;
        if let Some(what) = stream(kind) {
            return OutputKind::Stream(what.into());
        }
        if kind.is_symlink() {
            let target = std::fs::read_link(path)
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            return match std::fs::metadata(path) {
                Ok(meta) => match stream(meta.file_type()) {
                    Some(what) => OutputKind::Stream(format!("a link to {what} ({target})")),
                    None if meta.is_dir() => {
                        OutputKind::Other(format!("a symbolic link to the directory {target}"))
                    }
                    None => OutputKind::Other(format!("a symbolic link to {target}")),
                },
                Err(_) => OutputKind::Other(format!("a dangling symbolic link to {target}")),
            };
        }
        OutputKind::Other("a block device or other special file".into())
    }
}

/// A FIFO, character device or socket, by name; `None` for anything else.
#[cfg(unix)]
fn special_stream_kind(kind: std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_char_device() {
        Some("a character device")
    } else if kind.is_socket() {
        Some("a socket")
    } else {
        None
    }
}

#[cfg(not(unix))]
fn special_stream_kind(_kind: std::fs::FileType) -> Option<&'static str> {
    None
}

/// The temporary paths of the writes in progress in this process, for
/// [`remove_in_progress`].
static IN_PROGRESS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// A temporary path of a write in progress: registered for [`remove_in_progress`] while it
/// lives, and removed when dropped unless [`TempGuard::keep`] (the write put it in place). So a
/// failed write, an early return or a panic leaves nothing behind.
struct TempGuard {
    path: PathBuf,
    keep: bool,
}

impl TempGuard {
    fn new(path: PathBuf) -> Self {
        if let Ok(mut list) = IN_PROGRESS.lock() {
            list.push(path.clone());
        }
        TempGuard { path, keep: false }
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// The write succeeded: what is at the path now is not ours to remove.
    fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Ok(mut list) = IN_PROGRESS.lock() {
            list.retain(|p| p != &self.path);
        }
        if !self.keep {
            let _ = remove_any(&self.path);
        }
    }
}

/// Removes the temporary files and directories of every write in progress in this process
/// and returns their paths: what a signal handler calls before the process dies (SIGINT,
/// SIGTERM), so an interrupted save leaves no temporary behind. The library installs no
/// handler itself; the `burn-int8` command line does. The writes themselves then fail (their
/// temporary is gone), so call it only on the way out.
pub fn remove_in_progress() -> Vec<PathBuf> {
    let paths: Vec<PathBuf> = match IN_PROGRESS.lock() {
        Ok(list) => list.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    for path in &paths {
        // A writer may be adding files while the tree is removed: a few tries.
        for _ in 0..5 {
            if remove_any(path).is_ok() {
                break;
            }
        }
    }
    paths
}

/// Fills a temporary sibling of `dir` (`.NAME.tmp-PID`) with `fill`, syncs it, then puts it in
/// place of `dir`. An existing directory `dir` is replaced only with `overwrite`, and only after
/// the new one is complete; anything else at `dir` (a file, a link, a FIFO, a device) is never
/// replaced ([`AtomicError::NotADirectory`]). A failed `fill` removes the temporary
/// directory; nothing else is left behind. A missing parent directory is created.
///
/// Replacing is atomic on Linux: one `renameat2(RENAME_EXCHANGE)` swaps the two paths, so `dir`
/// always holds a complete directory, the old one or the new one, whenever the process dies;
/// the old one, now at the temporary path, is removed after. Where the exchange is not
/// available (other systems, or a filesystem that answers `EINVAL`/`ENOSYS`/`EOPNOTSUPP`) `dir`
/// is replaced with two renames, `dir` to `.NAME.old-PID` and the temporary directory to `dir`:
/// a process killed between the two leaves no `dir`, only `.NAME.old-PID` (and a complete
/// `.NAME.tmp-PID`). The next write (or [`recover_dir`]) of `dir` moves the old copy back first.
///
/// Each write starts by cleaning up after earlier ones: `.NAME.tmp-PID` and `.NAME.old-PID`
/// siblings whose process is gone (on Linux, no `/proc/PID`; elsewhere, only this process's
/// own pid counts as gone) are removed, after the recovery above. Two processes writing the
/// same path at once leave one complete directory there (one of the writes may fail); two
/// threads of one process must not write the same path at once.
pub fn write_dir<E: From<AtomicError>>(
    dir: &Path,
    overwrite: bool,
    fill: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let name = file_name(dir)?;
    let parent = parent_of(dir);
    if !parent.is_dir() {
        std::fs::create_dir_all(parent).map_err(|source| io(parent, source))?;
    }

    // Recovery and cleanup after earlier writes that were killed.
    let mut leftovers = dead_leftovers(dir, &name, true);
    restore_interrupted(dir, &mut leftovers.old)?;
    for path in leftovers.tmp.iter().chain(&leftovers.old) {
        match remove_any(path) {
            Ok(()) => tracing::info!("removed {}, left by an interrupted save", path.display()),
            Err(e) => tracing::warn!(
                "could not remove {}, left by an interrupted save: {e}",
                path.display()
            ),
        }
    }

    if exists(dir) && !overwrite {
        return Err(AtomicError::Exists { path: dir.into() }.into());
    }
    if let Ok(meta) = std::fs::symlink_metadata(dir)
        && !meta.is_dir()
    {
        let what = match OutputKind::of(dir) {
            OutputKind::RegularFile => "a regular file".to_string(),
            OutputKind::Stream(what) | OutputKind::Other(what) => what,
            OutputKind::Missing => "missing".to_string(),
        };
        return Err(AtomicError::NotADirectory {
            path: dir.into(),
            what,
        }
        .into());
    }
    let guard = TempGuard::new(sibling(dir, &name, "tmp"));
    let tmp = guard.path();
    let _ = remove_any(tmp);
    std::fs::create_dir(tmp).map_err(|source| io(tmp, source))?;
    let result = fill(tmp).and_then(|()| {
        sync_contents(tmp)?;
        hook::at(dir, "filled")?;
        if exists(dir) {
            replace(dir, tmp, &sibling(dir, &name, "old"))?;
        } else {
            std::fs::rename(tmp, dir).map_err(|source| io(dir, source))?;
            sync_dir(parent);
            hook::at(dir, "swapped")?;
        }
        Ok(())
    });
    // On success `tmp` is gone (renamed) or holds the replaced directory, removed by
    // `replace`; on failure the guard removes it. Either way, dropping the guard is right.
    drop(guard);
    result
}

/// When `dir` is missing because a [`write_dir`] replacing it was killed between the two
/// renames of the two-rename fallback (leaving `.NAME.old-PID` of a process that is gone),
/// moves that previous directory back to `dir`; true when it did. Readers of a directory
/// written with [`write_dir`] call it before reading.
pub fn recover_dir(dir: &Path) -> Result<bool, AtomicError> {
    if exists(dir) {
        return Ok(false);
    }
    let Some(name) = dir.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Ok(false);
    };
    let mut leftovers = dead_leftovers(dir, &name, false);
    restore_interrupted(dir, &mut leftovers.old)
}

/// Puts the complete `tmp` in place of the existing `dir`: one exchange where available, else
/// two renames through `old`. Once the new directory is in place, the old one is removed (a
/// failure to remove it is only a warning: the next write removes it).
fn replace(dir: &Path, tmp: &Path, old: &Path) -> Result<(), AtomicError> {
    if exchange(tmp, dir)? {
        sync_dir(parent_of(dir));
        hook::at(dir, "swapped")?;
        // `tmp` now holds the old directory (or the regular file that was at `dir`).
        if let Err(e) = remove_any(tmp) {
            tracing::warn!(
                "could not remove the previous {} (now {}): {e}",
                dir.display(),
                tmp.display()
            );
        }
        return Ok(());
    }
    std::fs::rename(dir, old).map_err(|source| io(dir, source))?;
    hook::at(dir, "first-rename")?;
    if let Err(source) = std::fs::rename(tmp, dir) {
        if let Err(back) = std::fs::rename(old, dir) {
            tracing::warn!(
                "could not move {} back to {}: {back}; the next save or load of {} restores it",
                old.display(),
                dir.display(),
                dir.display()
            );
        }
        return Err(io(dir, source));
    }
    sync_dir(parent_of(dir));
    hook::at(dir, "swapped")?;
    if let Err(e) = remove_any(old) {
        tracing::warn!(
            "could not remove the previous {} (now {}): {e}",
            dir.display(),
            old.display()
        );
    }
    Ok(())
}

/// Swaps `tmp` and `dir` atomically with `renameat2(RENAME_EXCHANGE)`. `Ok(false)`: not
/// supported here (or disabled with the `SAVE_NO_EXCHANGE_ENV` hook), nothing was changed.
#[cfg(target_os = "linux")]
fn exchange(tmp: &Path, dir: &Path) -> Result<bool, AtomicError> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    if hook::no_exchange() {
        return Ok(false);
    }
    let c_path = |path: &Path| {
        CString::new(path.as_os_str().as_bytes()).map_err(|_| {
            io(
                path,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "the path contains a NUL byte",
                ),
            )
        })
    };
    let (from, to) = (c_path(tmp)?, c_path(dir)?);
    // SAFETY: both pointers are NUL-terminated strings that live until the call returns;
    // renameat2 reads nothing else.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        return Ok(true);
    }
    let error = std::io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP) => {
            tracing::debug!(
                "renameat2(RENAME_EXCHANGE) is not supported for {} ({error}): replacing it with two renames",
                dir.display()
            );
            Ok(false)
        }
        _ => Err(io(dir, error)),
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_tmp: &Path, _dir: &Path) -> Result<bool, AtomicError> {
    Ok(false)
}

/// The fault-injection hooks: real with the `fault-injection` feature, nothing without.
#[cfg(feature = "fault-injection")]
mod hook {
    use std::path::Path;

    use super::{
        AtomicError, SAVE_ABORT_AT_ENV, SAVE_FAIL_AT_ENV, SAVE_NO_EXCHANGE_ENV, SAVE_PAUSE_AT_ENV,
    };

    /// Aborts or fails at `step` of the write of `path` when [`SAVE_ABORT_AT_ENV`] or
    /// [`SAVE_FAIL_AT_ENV`] names it.
    pub(super) fn at(path: &Path, step: &'static str) -> Result<(), AtomicError> {
        if std::env::var(SAVE_ABORT_AT_ENV).is_ok_and(|at| at == step) {
            eprintln!("{SAVE_ABORT_AT_ENV}={step}: aborting the save here (test hook)");
            std::process::abort();
        }
        if std::env::var(SAVE_PAUSE_AT_ENV).is_ok_and(|at| at == step) {
            eprintln!("{SAVE_PAUSE_AT_ENV}={step}: paused");
            loop {
                std::thread::park();
            }
        }
        if std::env::var(SAVE_FAIL_AT_ENV).is_ok_and(|at| at == step) {
            return Err(AtomicError::InjectedFailure {
                path: path.into(),
                step,
            });
        }
        Ok(())
    }

    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(super) fn no_exchange() -> bool {
        std::env::var(SAVE_NO_EXCHANGE_ENV).is_ok_and(|value| !value.is_empty() && value != "0")
    }
}

#[cfg(not(feature = "fault-injection"))]
mod hook {
    use std::path::Path;

    use super::AtomicError;

    #[inline(always)]
    pub(super) fn at(_path: &Path, _step: &'static str) -> Result<(), AtomicError> {
        Ok(())
    }

    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    #[inline(always)]
    pub(super) fn no_exchange() -> bool {
        false
    }
}

fn io(path: &Path, source: std::io::Error) -> AtomicError {
    AtomicError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The last component of `path`, which the temporary siblings are named after.
fn file_name(path: &Path) -> Result<String, AtomicError> {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| AtomicError::NoFileName { path: path.into() })
}

/// `.NAME.TAG-PID` beside `path` (`TAG`: `tmp` or `old`).
fn sibling(path: &Path, name: &str, tag: &str) -> PathBuf {
    path.with_file_name(format!(".{name}.{tag}-{}", std::process::id()))
}

/// The directory holding `path` (`.` for a bare name).
fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Whether anything (a directory, a file, a link, even a dangling one) is at `path`.
fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Removes whatever is at `path`: a directory with its contents, a file or a link (not its
/// target). Nothing there is not an error.
fn remove_any(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Syncs every file of the filled temporary directory, then the directory itself.
fn sync_contents(tmp: &Path) -> Result<(), AtomicError> {
    for entry in std::fs::read_dir(tmp).map_err(|source| io(tmp, source))? {
        let path = entry.map_err(|source| io(tmp, source))?.path();
        if path.is_dir() {
            sync_dir(&path);
        } else {
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|source| io(&path, source))?;
        }
    }
    sync_dir(tmp);
    Ok(())
}

/// Syncs a directory's entries (renames into it) where the system allows it; best effort.
fn sync_dir(path: &Path) {
    if cfg!(unix) {
        let _ = std::fs::File::open(path).and_then(|f| f.sync_all());
    }
}

/// `.NAME.tmp-PID` and `.NAME.old-PID` siblings of a write of `dir` whose process is gone.
#[derive(Default)]
struct Leftovers {
    tmp: Vec<PathBuf>,
    old: Vec<PathBuf>,
}

/// The leftovers of earlier writes of `dir` (named `name`) by processes that no longer run;
/// with `own`, this process's own pid counts as gone (a write about to reuse those names).
fn dead_leftovers(dir: &Path, name: &str, own: bool) -> Leftovers {
    let mut found = Leftovers::default();
    let Ok(entries) = std::fs::read_dir(parent_of(dir)) else {
        return found;
    };
    let me = std::process::id();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some((old, pid)) = file_name.to_str().and_then(|f| leftover_of(f, name)) else {
            continue;
        };
        let gone = if pid == me { own } else { !process_alive(pid) };
        if gone {
            if old {
                found.old.push(entry.path())
            } else {
                found.tmp.push(entry.path())
            }
        }
    }
    found
}

/// `.NAME.tmp-PID` is `Some((false, PID))`, `.NAME.old-PID` is `Some((true, PID))`.
fn leftover_of(file_name: &str, name: &str) -> Option<(bool, u32)> {
    let rest = file_name
        .strip_prefix('.')?
        .strip_prefix(name)?
        .strip_prefix('.')?;
    let (old, pid) = match rest.strip_prefix("tmp-") {
        Some(pid) => (false, pid),
        None => (true, rest.strip_prefix("old-")?),
    };
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((old, pid.parse().ok()?))
}

/// Whether process `pid` runs (or may run: without `/proc`, every other pid counts as alive).
fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// When `dir` is missing and a dead write left its old copy aside (`.NAME.old-PID`: killed
/// between the two renames of the fallback), moves the newest such copy back to `dir`.
fn restore_interrupted(dir: &Path, old: &mut Vec<PathBuf>) -> Result<bool, AtomicError> {
    if exists(dir) || old.is_empty() {
        return Ok(false);
    }
    old.sort_by_key(|path| {
        std::fs::symlink_metadata(path)
            .and_then(|m| m.modified())
            .ok()
    });
    let Some(newest) = old.pop() else {
        return Ok(false);
    };
    std::fs::rename(&newest, dir).map_err(|source| io(&newest, source))?;
    sync_dir(parent_of(dir));
    tracing::warn!(
        "{} was missing (a save replacing it was interrupted): restored the previous copy from {}",
        dir.display(),
        newest.display()
    );
    Ok(true)
}

impl AtomicError {
    /// The path the write was for (or, for [`AtomicError::Io`], the one that failed).
    pub fn path(&self) -> &Path {
        match self {
            AtomicError::Io { path, .. }
            | AtomicError::NoFileName { path }
            | AtomicError::Exists { path }
            | AtomicError::NotARegularFile { path, .. }
            | AtomicError::NotADirectory { path, .. } => path,
            #[cfg(feature = "fault-injection")]
            AtomicError::InjectedFailure { path, .. } => path,
        }
    }
}

/// The root crate's saves ([`crate::store::save`]) report the write's failures as their own.
impl From<AtomicError> for crate::Int8Error {
    fn from(error: AtomicError) -> Self {
        match error {
            AtomicError::Io { path, source } => crate::Int8Error::Io { path, source },
            other => crate::Int8Error::Io {
                path: other.path().to_path_buf(),
                source: std::io::Error::other(other.to_string()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let root =
            std::env::temp_dir().join(format!("burn-int8-atomic-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        root
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_failed_file_write_keeps_the_old_file_and_leaves_no_temporary() {
        let root = scratch("file");
        let path = root.join("out.bin");
        std::fs::write(&path, b"old").unwrap();
        let failed: Result<(), AtomicError> = write_file(&path, |tmp| {
            std::fs::write(tmp, b"half").unwrap();
            Err(io(tmp, std::io::Error::other("disk full")))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(names_in(&root), ["out.bin"]);
        write_file::<AtomicError>(&path, |tmp| {
            std::fs::write(tmp, b"new").map_err(|e| io(tmp, e))
        })
        .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(names_in(&root), ["out.bin"]);
        std::fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn a_directory_is_replaced_only_with_overwrite_and_leaves_nothing_behind() {
        let root = scratch("dir");
        let dir = root.join("preset");
        let fill = |text: &'static [u8]| {
            move |tmp: &Path| std::fs::write(tmp.join("a"), text).map_err(|e| io(tmp, e))
        };
        write_dir(&dir, false, fill(b"one")).unwrap();
        let refused = write_dir(&dir, false, fill(b"two")).unwrap_err();
        assert!(matches!(refused, AtomicError::Exists { .. }), "{refused}");
        assert_eq!(std::fs::read(dir.join("a")).unwrap(), b"one");
        write_dir(&dir, true, fill(b"two")).unwrap();
        assert_eq!(std::fs::read(dir.join("a")).unwrap(), b"two");
        let failed = write_dir(&dir, true, |tmp| {
            Err(io(tmp, std::io::Error::other("fill failed")))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(dir.join("a")).unwrap(), b"two");
        assert_eq!(names_in(&root), ["preset"]);
        std::fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn a_missing_directory_comes_back_from_the_old_copy_of_a_dead_write() {
        let root = scratch("recover");
        let dir = root.join("preset");
        // What a write killed between its two renames leaves: only `.preset.old-PID`, of a
        // process that no longer runs (pid 0 is never a user process: no `/proc/0`).
        let aside = root.join(".preset.old-0");
        std::fs::create_dir_all(&aside).unwrap();
        std::fs::write(aside.join("a"), b"old").unwrap();
        if cfg!(target_os = "linux") {
            assert!(recover_dir(&dir).unwrap());
            assert_eq!(std::fs::read(dir.join("a")).unwrap(), b"old");
            assert_eq!(names_in(&root), ["preset"]);
        }
        std::fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn only_this_crates_sibling_names_are_leftovers() {
        assert_eq!(leftover_of(".p.tmp-12", "p"), Some((false, 12)));
        assert_eq!(leftover_of(".p.old-7", "p"), Some((true, 7)));
        for other in [".p.tmp-", ".p.tmp-1a", "p.tmp-1", ".q.tmp-1", ".p.new-1"] {
            assert_eq!(leftover_of(other, "p"), None, "{other}");
        }
    }

    #[test]
    fn only_regular_files_and_directories_are_ever_replaced() {
        let root = scratch("kinds");
        let target = root.join("precious");
        std::fs::write(&target, b"precious").unwrap();
        let link = root.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let fill = |tmp: &Path| std::fs::write(tmp, b"new").map_err(|e| io(tmp, e));
        let refused = write_file::<AtomicError>(&link, fill).unwrap_err();
        assert!(
            matches!(refused, AtomicError::NotARegularFile { .. }),
            "{refused}"
        );
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
        let refused = write_file::<AtomicError>(&root, fill).unwrap_err();
        assert!(
            matches!(refused, AtomicError::NotARegularFile { .. }),
            "{refused}"
        );
        let fill_dir = |tmp: &Path| std::fs::write(tmp.join("a"), b"x").map_err(|e| io(tmp, e));
        for path in [&target, &link] {
            let refused = write_dir::<AtomicError>(path, true, fill_dir).unwrap_err();
            assert!(
                matches!(refused, AtomicError::NotADirectory { .. }),
                "{refused}"
            );
        }
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
        assert_eq!(names_in(&root), ["link", "precious"]);
        std::fs::remove_dir_all(&root).ok();
    }
}
