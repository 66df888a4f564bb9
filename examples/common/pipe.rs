//! Exiting quietly when standard output is closed (an example piped into
//! `head`, say).

/// Restores the default action of SIGPIPE, which the Rust runtime ignores:
/// a write to a closed stdout then ends the process quietly instead of
/// making `println!` panic with "Broken pipe". Call it first in `main`.
pub fn quiet_on_closed_stdout() {
    #[cfg(unix)]
    // SAFETY: sets a signal disposition to its default at start-up; no
    // handler runs Rust code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
