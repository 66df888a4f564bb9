//! What every example does first: exit quietly when standard output is
//! closed (an example piped into `head`, say), and parse its flags so that a
//! bad flag is one line on stderr and exit code 2.

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

/// The parsed flags of `P`. `--help` and `--version` print as usual and
/// exit 0; a bad flag prints the first line of clap's message (which names
/// the flag and the value) and exits with code 2.
#[allow(dead_code)] // not every example that includes this file parses with it
pub fn parse_args<P: clap::Parser>() -> P {
    match P::try_parse() {
        Ok(args) => args,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let text = e.to_string();
            eprintln!(
                "{}",
                text.lines().next().unwrap_or("error: invalid arguments").trim_end()
            );
            std::process::exit(2);
        }
    }
}
