//! The crate's one error type.

use std::path::PathBuf;

use crate::record::History;

/// Everything that can go wrong in `ntk-momentum`.
///
/// Every message names what was wrong and what was expected. The enum is
/// `#[non_exhaustive]`: match on the variants you handle and keep a `_` arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A hyper-parameter or argument is outside its allowed range.
    #[error("invalid {name} = {value}: expected {expected}")]
    InvalidParameter {
        /// Name of the parameter, e.g. `"lr"`.
        name: &'static str,
        /// The value that was given, formatted.
        value: String,
        /// What is allowed, e.g. `"a finite number > 0"`.
        expected: String,
    },
    /// Two shapes that must agree do not.
    #[error("shape mismatch in {what}: expected {expected}, found {found}")]
    ShapeMismatch {
        /// What was being checked, e.g. `"gradient"`.
        what: String,
        /// The shape that was expected.
        expected: String,
        /// The shape that was found.
        found: String,
    },
    /// An input holds NaN or an infinity.
    #[error("non-finite value in {what} at {location}: all entries must be finite")]
    NonFinite {
        /// Which input, e.g. `"x"`.
        what: String,
        /// Where, e.g. `"row 3, column 7"`.
        location: String,
    },
    /// A request would allocate more than the memory budget
    /// ([`crate::memory_limit`]), or than a documented size limit.
    #[error("{what} would need {requested} bytes, above the limit of {limit} bytes (the memory budget: see ntk_momentum::memory_limit)")]
    TooLarge {
        /// What was requested, e.g. `"Jacobian (1000 x 4194304)"`.
        what: String,
        /// Bytes that would be allocated (`u64::MAX` if the count overflows).
        requested: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// A combination the crate refuses rather than computing something else.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A training run diverged; the history up to that step is kept.
    #[error("training diverged at step {step}: loss {loss:e} ({reason})")]
    Diverged {
        /// The step at which divergence was detected.
        step: usize,
        /// The offending loss (may be NaN or infinite).
        loss: f64,
        /// Why the run was judged divergent.
        reason: String,
        /// Everything recorded up to and including the diverged step.
        history: Box<History>,
    },
    /// An operating-system I/O error, with the path it concerned.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file does not have the expected layout.
    #[error("malformed file {} at byte offset {offset}: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// Byte offset where the problem was detected.
        offset: u64,
        /// What was wrong and what was expected.
        message: String,
    },
    /// A checkpoint cannot be read or does not match the run it is loaded into.
    #[error("invalid checkpoint {}: {message}", path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// A data request cannot be met (too few samples, unknown class, ...).
    #[error("invalid data request: {0}")]
    Data(String),
    /// A download failed: no connection, an HTTP error status, a body that
    /// is truncated or too large, or a checksum that differs from the
    /// published one (feature `download`).
    #[error("download of {url} failed: {message}")]
    Download {
        /// The URL that was requested.
        url: String,
        /// What went wrong, e.g. the expected and the actual digest.
        message: String,
    },
}

impl Error {
    pub(crate) fn invalid(name: &'static str, value: impl std::fmt::Display, expected: impl Into<String>) -> Self {
        Error::InvalidParameter {
            name,
            value: value.to_string(),
            expected: expected.into(),
        }
    }

    pub(crate) fn shape(what: impl Into<String>, expected: impl Into<String>, found: impl Into<String>) -> Self {
        Error::ShapeMismatch {
            what: what.into(),
            expected: expected.into(),
            found: found.into(),
        }
    }

    /// Prefixes the `what` of a shape or finiteness error with `context`
    /// (e.g. "evaluation set x_test"); other errors are returned unchanged.
    pub(crate) fn context(self, context: &str) -> Self {
        match self {
            Error::ShapeMismatch { what, expected, found } => Error::ShapeMismatch {
                what: format!("{context}: {what}"),
                expected,
                found,
            },
            Error::NonFinite { what, location } => Error::NonFinite {
                what: format!("{context}: {what}"),
                location,
            },
            other => other,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn format(path: impl Into<PathBuf>, offset: u64, message: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            offset,
            message: message.into(),
        }
    }
}

/// `Result` with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
