//! The full-batch training loop.

mod history;

pub use history::{Diagnostics, History};
