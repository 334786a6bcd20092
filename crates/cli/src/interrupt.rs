//! Signals, as Unix tools take them. SIGPIPE kills the process quietly (a closed stdout ends
//! `generate … | head` at its next write instead of a panic or decoding on for nobody).
//! SIGINT and SIGTERM remove the temporary files and directories of the saves in progress
//! (`burn_int8::io::atomic::remove_in_progress`), then end the process by that signal as the
//! default action would.

use signal_hook::consts::{SIGINT, SIGTERM};

/// Installs both; call once, first thing in `main`.
pub fn install() {
    // SAFETY: setting a signal's disposition to the default has no preconditions; Rust's
    // runtime set SIGPIPE to "ignore", which turns every write to a closed pipe into an error
    // that `println!` panics on.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
        tracing::warn!(
            "could not install the SIGINT/SIGTERM handler; interrupted saves leave their temporary directory until the next save"
        );
        return;
    };
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            for path in burn_int8::io::atomic::remove_in_progress() {
                crate::output::note!("interrupted: removed the unfinished {}", path.display());
            }
            // Dies by the signal, with its usual exit status (130 for SIGINT in a shell).
            let _ = signal_hook::low_level::emulate_default_handler(signal);
            std::process::exit(128 + signal);
        }
    });
}
