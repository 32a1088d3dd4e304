//! The one error type of this crate.

use std::path::PathBuf;

/// What went wrong with a model spec, a parameter vector or a model file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The architecture cannot be built (a zero-sized layer, too few classes, …).
    #[error("invalid model spec: {0}")]
    InvalidSpec(String),
    /// A flat parameter vector whose length is not the spec's parameter count.
    #[error("parameter vector has {got} values, the model spec needs {expected}")]
    WrongLength {
        /// What the spec's layout needs.
        expected: usize,
        /// What was given.
        got: usize,
    },
    /// Reading or writing a model file failed.
    #[error("model file {}: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause (in the message, not repeated as a source).
        cause: std::io::Error,
    },
    /// A model file that is not a valid flock model.
    #[error("model file {}: {reason}", path.display())]
    BadFile {
        /// The file (or `<memory>`).
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A model file whose content does not hash to the expected id.
    #[error("model file {}: content hash is {actual}, expected {expected}", path.display())]
    HashMismatch {
        /// The file.
        path: PathBuf,
        /// The id that was asked for.
        expected: String,
        /// The SHA-256 of what was read.
        actual: String,
    },
    /// Training settings that cannot work.
    #[error("invalid training config: {0}")]
    Training(String),
    /// Updates that cannot be averaged (none, lengths differ, zero weight).
    #[error("cannot aggregate: {0}")]
    Aggregate(String),
}
