//! The problem-size flags shared by the timing examples (`step_timing`,
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
