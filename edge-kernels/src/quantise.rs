//! Fixed-point quantisation with stochastic rounding, its overflow guard, and dequantisation.
//!
//! A value `x` is clamped to `[-c, c]`, shifted and scaled to `t = (x + c) · s` with
//! `s = (2^b − 1) / 2c`, so that `t ∈ [0, 2^b − 1]`, and rounded to the integer below or above
//! `t` at random: up with probability `frac(t)`, which makes the rounding unbiased.
//! The random bits come from a ChaCha20 keystream: element `i` uses keystream word `i`, whose top
//! 24 bits `u` give the comparison `u < frac(t) · 2^24`.
//!
//! # Why CPU and GPU agree bit for bit
//! Only two floating-point operations round: `x + c` and the product with `s`, each a single
//! IEEE-754 operation rounded to nearest, which Vulkan, Metal and DX12 all require to be correctly
//! rounded. No multiply-add can be contracted from them (the add comes first). `floor`, the
//! fractional part, the clamps and the comparison are exact. The GPU shader extracts integer and
//! fractional parts from the bits of `t`, so a driver's contraction of `t − floor(t)` cannot
//! change a result either. Parameters are limited to `c ∈ [2^-60, 2^60]`, which keeps every
//! non-zero intermediate a normal number: devices that flush subnormals agree with those that
//! do not.

use crate::KernelError;
use crate::keystream::Keystream;

/// Elements processed per keystream refill.
const CHUNK: usize = 256;
/// Smallest and largest clip range accepted.
const MIN_RANGE: f32 = 8.673_617e-19; // 2^-60
const MAX_RANGE: f32 = 1.152_921_5e18; // 2^60

/// A validated quantiser: bit width and clip range, with the derived scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantParams {
    bits: u32,
    range: f32,
    scale: f32,
    top: f32,
}

impl QuantParams {
    /// A quantiser for `bits` ∈ 1..=32 over `[-range, range]`.
    ///
    /// # Errors
    /// [`KernelError::InvalidBits`] or [`KernelError::InvalidRange`].
    pub fn new(bits: u32, range: f32) -> Result<Self, KernelError> {
        if !(1..=32).contains(&bits) {
            return Err(KernelError::InvalidBits(bits));
        }
        if !(MIN_RANGE..=MAX_RANGE).contains(&range) {
            return Err(KernelError::InvalidRange(range));
        }
        let levels = f64::from(max_level(bits));
        let scale = (levels / (2.0 * f64::from(range))) as f32;
        let mut top = levels as f32;
        if f64::from(top) > levels {
            top = top.next_down();
        }
        Ok(Self {
            bits,
            range,
            scale,
            top,
        })
    }

    /// Bits per quantised value.
    #[must_use]
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// The clip range `c`: inputs are clamped to `[-c, c]`.
    #[must_use]
    pub fn range(&self) -> f32 {
        self.range
    }

    /// The scale `s = (2^b − 1) / 2c`, rounded once to `f32`; CPU and GPU use this same value.
    #[must_use]
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// The largest `f32` not above `2^b − 1`: `t` is clamped to it before rounding.
    #[must_use]
    pub fn top(&self) -> f32 {
        self.top
    }

    /// One quantisation level in the units of the values, `1/s`: the most by which a
    /// stochastically rounded value (or a mean of them) differs from the value.
    #[must_use]
    pub fn resolution(&self) -> f64 {
        1.0 / f64::from(self.scale)
    }

    /// The largest quantised value, `2^b − 1`.
    #[must_use]
    pub fn max_level(&self) -> u32 {
        max_level(self.bits)
    }
}

fn max_level(bits: u32) -> u32 {
    u32::MAX >> (32 - bits)
}

/// The keystream that drives stochastic rounding.
#[derive(Clone, PartialEq, Eq)]
pub struct RoundingStream {
    /// ChaCha20 key.
    pub seed: [u8; 32],
    /// Stream id.
    pub stream: u64,
}

impl std::fmt::Debug for RoundingStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoundingStream")
            .field("seed", &"<redacted>")
            .field("stream", &self.stream)
            .finish()
    }
}

/// Quantises `input` into `out` (same length) with stochastic rounding.
///
/// # Errors
/// [`KernelError::LengthMismatch`] or [`KernelError::NonFinite`] (the first bad element); `out`
/// may then be partly written.
pub fn quantise(
    input: &[f32],
    params: &QuantParams,
    rounding: &RoundingStream,
    out: &mut [u32],
) -> Result<(), KernelError> {
    if input.len() != out.len() {
        return Err(KernelError::LengthMismatch {
            what: "quantise output",
            expected: input.len(),
            actual: out.len(),
        });
    }
    if let Some(index) = input.iter().position(|x| !x.is_finite()) {
        return Err(KernelError::NonFinite {
            index,
            value: input[index],
        });
    }
    let mut rng = Keystream::new(&rounding.seed, rounding.stream, 0);
    let mut buf = [0u8; CHUNK * 4];
    for (xs, qs) in input.chunks(CHUNK).zip(out.chunks_mut(CHUNK)) {
        let bytes = &mut buf[..xs.len() * 4];
        rng.fill(bytes);
        let (words, _) = bytes.as_chunks::<4>();
        for ((x, q), w) in xs.iter().zip(qs.iter_mut()).zip(words) {
            *q = quantise_one(*x, u32::from_le_bytes(*w), params);
        }
    }
    Ok(())
}

/// One element: see the module documentation for each step.
#[inline]
fn quantise_one(x: f32, random: u32, p: &QuantParams) -> u32 {
    let shifted = x.clamp(-p.range, p.range) + p.range;
    let t = (shifted * p.scale).min(p.top);
    let floor = t.floor();
    let frac_24 = (t - floor) * 16_777_216.0; // exact: a power-of-two scaling of an exact value
    let up = ((random >> 8) as f32) < frac_24;
    floor as u32 + u32::from(up)
}

/// Checks that a sum of `clients` vectors of `bits`-bit values cannot wrap modulo 2^32, that
/// is `clients · (2^bits − 1) < 2^32`.
///
/// # Errors
/// [`KernelError::InvalidBits`] or [`KernelError::SumOverflow`], which names the largest
/// number of clients that would fit.
pub fn check_sum_capacity(clients: u64, bits: u32) -> Result<(), KernelError> {
    if !(1..=32).contains(&bits) {
        return Err(KernelError::InvalidBits(bits));
    }
    let max_clients = u64::from(u32::MAX) / u64::from(max_level(bits));
    if clients > max_clients {
        return Err(KernelError::SumOverflow {
            clients,
            bits,
            max_clients,
        });
    }
    Ok(())
}

/// The mean of `clients` quantised vectors, from their modular sum: `(Σq / n) / s − c` per
/// element, computed in `f64` and rounded once to `f32`.
///
/// # Errors
/// [`KernelError::NoClients`] for `clients == 0`; [`KernelError::SumOverflow`] when a sum of that
/// many vectors could have wrapped, so that the mean would be garbage;
/// [`KernelError::SumOutOfRange`] for the first word no sum of in-range vectors gives.
pub fn dequantise_mean(
    sum: &[u32],
    clients: u64,
    params: &QuantParams,
) -> Result<Vec<f32>, KernelError> {
    if clients == 0 {
        return Err(KernelError::NoClients);
    }
    check_sum_capacity(clients, params.bits)?;
    let max = clients * u64::from(params.max_level());
    if let Some(index) = sum.iter().position(|&w| u64::from(w) > max) {
        return Err(KernelError::SumOutOfRange {
            index,
            word: sum[index],
            max,
            clients,
        });
    }
    let n = clients as f64;
    let s = f64::from(params.scale);
    let c = f64::from(params.range);
    Ok(sum
        .iter()
        .map(|&q| (f64::from(q) / n / s - c) as f32)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ends_of_the_range_map_to_zero_and_the_top_level() {
        let p = QuantParams::new(16, 1.0).unwrap();
        let rs = RoundingStream {
            seed: [1; 32],
            stream: 0,
        };
        let mut q = [0u32; 4];
        quantise(&[-1.0, 1.0, -5.0, 5.0], &p, &rs, &mut q).unwrap();
        assert_eq!(q, [0, 65_535, 0, 65_535]);
    }

    #[test]
    fn thirty_two_bits_never_exceed_u32() {
        let p = QuantParams::new(32, 0.5).unwrap();
        assert!(f64::from(p.top()) <= f64::from(u32::MAX));
        let mut q = [0u32; 1];
        quantise(
            &[0.5],
            &p,
            &RoundingStream {
                seed: [0; 32],
                stream: 0,
            },
            &mut q,
        )
        .unwrap();
        assert_eq!(q[0], p.top() as u32);
    }

    #[test]
    fn bad_parameters_are_refused_by_name() {
        assert_eq!(QuantParams::new(0, 1.0), Err(KernelError::InvalidBits(0)));
        assert_eq!(QuantParams::new(33, 1.0), Err(KernelError::InvalidBits(33)));
        assert!(matches!(
            QuantParams::new(8, 0.0),
            Err(KernelError::InvalidRange(_))
        ));
        assert!(matches!(
            QuantParams::new(8, f32::NAN),
            Err(KernelError::InvalidRange(_))
        ));
        assert!(matches!(
            QuantParams::new(8, 1e30),
            Err(KernelError::InvalidRange(_))
        ));
    }

    #[test]
    fn capacity_is_exactly_n_times_max_below_two_to_the_32() {
        // 2^16 − 1 divides 2^32 − 1 exactly: 65 537 clients of 16 bits sum to 2^32 − 1.
        assert!(check_sum_capacity(65_537, 16).is_ok());
        let err = check_sum_capacity(65_538, 16).unwrap_err();
        assert_eq!(
            err,
            KernelError::SumOverflow {
                clients: 65_538,
                bits: 16,
                max_clients: 65_537
            }
        );
        assert!(err.to_string().contains("65538 clients"));
        assert!(check_sum_capacity(1, 32).is_ok());
        assert!(check_sum_capacity(2, 32).is_err());
        assert!(check_sum_capacity(u64::MAX, 1).is_err());
        assert_eq!(check_sum_capacity(3, 0), Err(KernelError::InvalidBits(0)));
    }

    #[test]
    fn non_finite_input_is_named() {
        let p = QuantParams::new(8, 1.0).unwrap();
        let rs = RoundingStream {
            seed: [0; 32],
            stream: 0,
        };
        let mut q = [0u32; 3];
        let err = quantise(&[0.0, 0.0, f32::INFINITY], &p, &rs, &mut q).unwrap_err();
        assert!(matches!(err, KernelError::NonFinite { index: 2, .. }));
        assert!(matches!(
            quantise(&[0.0], &p, &rs, &mut q),
            Err(KernelError::LengthMismatch {
                expected: 1,
                actual: 3,
                ..
            })
        ));
    }

    #[test]
    fn mean_of_zero_clients_or_an_overflowing_count_is_refused() {
        let p = QuantParams::new(16, 1.0).unwrap();
        assert_eq!(dequantise_mean(&[1], 0, &p), Err(KernelError::NoClients));
        assert!(matches!(
            dequantise_mean(&[1], 70_000, &p),
            Err(KernelError::SumOverflow { .. })
        ));
    }

    #[test]
    fn a_sum_word_no_in_range_inputs_give_is_refused_and_named() {
        let p = QuantParams::new(16, 1.0).unwrap();
        assert!(dequantise_mean(&[0, 3 * 65_535], 3, &p).is_ok());
        assert_eq!(
            dequantise_mean(&[0, 3 * 65_535 + 1, u32::MAX], 3, &p),
            Err(KernelError::SumOutOfRange {
                index: 1,
                word: 3 * 65_535 + 1,
                max: 3 * 65_535,
                clients: 3,
            })
        );
    }
}
