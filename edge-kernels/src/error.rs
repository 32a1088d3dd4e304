//! The one error type of the CPU kernels: every way a kernel call can be refused.

/// Why a kernel refused its input. Each variant names the offending value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum KernelError {
    /// Two vectors that must have the same length do not.
    #[error("length mismatch: {what} has {actual} elements, expected {expected}")]
    LengthMismatch {
        /// Which argument had the wrong length.
        what: &'static str,
        /// The length it should have had.
        expected: usize,
        /// The length it had.
        actual: usize,
    },
    /// An input element is NaN or infinite.
    #[error("element {index} is not finite ({value})")]
    NonFinite {
        /// Position of the first non-finite element.
        index: usize,
        /// Its value.
        value: f32,
    },
    /// The bit width is outside 1..=32.
    #[error("quantisation bits must be in 1..=32, got {0}")]
    InvalidBits(u32),
    /// The clip range is not a positive finite number in the supported span.
    #[error("clip range must be finite and within [2^-60, 2^60], got {0}")]
    InvalidRange(f32),
    /// The L2 norm bound is not a positive finite number.
    #[error("L2 norm bound must be positive and finite, got {0}")]
    InvalidNormBound(f32),
    /// A sum of `clients` vectors of `bits`-bit values could exceed 2^32 − 1 and wrap.
    #[error(
        "{clients} clients × (2^{bits} − 1) does not fit in 32 bits: the modular sum could wrap; \
         use at most {max_clients} clients at {bits} bits or fewer bits"
    )]
    SumOverflow {
        /// Number of vectors to be summed.
        clients: u64,
        /// Bits per quantised value.
        bits: u32,
        /// Largest number of clients that fits at this width.
        max_clients: u64,
    },
    /// A mean was asked of zero vectors.
    #[error("cannot take the mean of zero vectors")]
    NoClients,
    /// A word of a sum above `clients · (2^bits − 1)`: no sum of in-range quantised vectors
    /// gives it, so at least one of them was not quantised honestly (a contributor's fault).
    #[error(
        "sum word {index} is {word}, above {max} = {clients} × the top level: some contributor's \
         input was out of range"
    )]
    SumOutOfRange {
        /// The word's position.
        index: usize,
        /// Its value.
        word: u32,
        /// The largest value in-range inputs can sum to.
        max: u64,
        /// Number of vectors summed.
        clients: u64,
    },
}
