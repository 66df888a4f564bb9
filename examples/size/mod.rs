//! The flags and start-up shared by the timing examples (`step_timing`,
//! `ntk_timing`, `agreement`): a synthetic problem of `n` unit-norm inputs in
//! R^d for a network of width `m`, drawn from `seed`.

/// `--n --d --m --seed`, flattened into each example's flags.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct Size {
    /// Number of samples.
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    /// Input dimension.
    #[arg(long, default_value_t = 3072)]
    pub d: usize,
    /// Width (hidden neurons).
    #[arg(long, default_value_t = 4096)]
    pub m: usize,
    /// Seed of the data and the network.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Float type of a timing run.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Dtype {
    /// Single precision.
    F32,
    /// Double precision.
    F64,
}

#[path = "../common/startup.rs"]
mod startup;

#[path = "../common/backend.rs"]
#[allow(dead_code)] // not every timing example offers --gemm-backend
pub mod backend;

/// Checks `--steps` and sets the thread count; exits with code 2 on `--steps 0`.
pub fn start(steps: usize, threads: usize) {
    startup::quiet_on_closed_stdout();
    if steps == 0 {
        eprintln!("error: --steps must be at least 1");
        std::process::exit(2);
    }
    ntk_momentum::set_gemm_threads(threads);
}

/// Exits quietly on a closed stdout from now on, and parses the flags (a
/// bad flag: one line on stderr, exit code 2).
pub fn parse_args<P: clap::Parser>() -> P {
    startup::quiet_on_closed_stdout();
    startup::parse_args()
}

/// The value, or a one-line error and exit code 2.
pub fn or_exit<T>(result: Result<T, ntk_momentum::Error>) -> T {
    result.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2)
    })
}
