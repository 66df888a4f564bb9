//! Trains the two-layer ReLU network on a binary task of real
//! FashionMnist images with gradient descent, heavy ball and Nesterov, and sets the
//! measured convergence rates beside those predicted from the NTK spectrum.
//!
//! ```text
//! cargo run --release --example fashion_subset                       # embedded subset
//! cargo run --release --example fashion_subset -- --data-dir DIR --n 1000 --width 4096
//! ```
//!
//! Run with `--help` for every flag. Writes `history.csv` and `loss.svg` to
//! `--out` (default `target/experiments/fashion_subset`).

mod common;

fn main() {
    common::subset_experiment(ntk_momentum::data::Dataset::FashionMnist, "fashion_subset");
}
