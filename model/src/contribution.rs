//! The vector an agent contributes to a secure round, and what the aggregator makes of their
//! sum: the one definition both sides (and the tests that check the secure sum against the
//! clear one) use.
//!
//! An agent with update `Δ` (already clipped to L2 norm `C`, the round's clip bound and the
//! quantiser's range) and `n` training samples contributes `[w·Δ, w·C]` with
//! `w = min(n, cap) / cap`: a vector one longer than the model. Summed under SecAgg+ (and
//! averaged over the `k` contributors), the last coordinate is `C·Σw/k`, so the aggregator
//! learns `Σ w_k Δ_k` and `Σ w_k`, and never one device's sample count. The FedAvg update is
//! their quotient, [`decode`], which refuses a sum no honest cohort gives ([`DecodeError`]).

/// `min(samples, cap) / cap` (a cap of 0 counts as 1): a device's FedAvg weight, in `[0, 1]`.
pub fn weight(samples: u64, sample_cap: u64) -> f32 {
    let cap = sample_cap.max(1);
    (samples.min(cap) as f64 / cap as f64) as f32
}

/// The vector `[w·Δ, w·C]` for a clipped update `delta` (see the module documentation).
pub fn encode(delta: Vec<f32>, samples: u64, sample_cap: u64, clip: f32) -> Vec<f32> {
    let w = weight(samples, sample_cap);
    let mut values: Vec<f32> = delta.into_iter().map(|x| x * w).collect();
    values.push(w * clip);
    values
}

/// Length of the contributed vector for a model of `params` parameters.
pub fn vector_len(params: usize) -> usize {
    params + 1
}

/// Why a round's mean vector is not one an honest cohort gives. The vector is a secure sum, so
/// the fault is some contributor's, and which one cannot be told.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// No coordinates at all.
    #[error("an empty sum")]
    Empty,
    /// The weight coordinate gives a mean weight no contributors with 1 to `cap` samples each
    /// give.
    #[error(
        "the mean weight {got} is outside [{min}, {max}]: some contributor's weight was not in \
         [1/cap, 1]"
    )]
    MeanWeight {
        /// The mean weight the sum gives.
        got: f64,
        /// The least honest contributors give (`1/cap`, less the quantisation error).
        min: f64,
        /// The most (`1`, plus the quantisation error).
        max: f64,
    },
    /// An element of the update is not a finite number.
    #[error("element {index} of the update is not finite")]
    NonFinite {
        /// Its position.
        index: usize,
    },
    /// The update's L2 norm is above what a weighted mean of updates clipped to `C` can have.
    #[error(
        "the update's L2 norm {norm} is above {bound}: some contributor's update was not clipped \
         to the round's bound"
    )]
    Norm {
        /// The update's norm.
        norm: f64,
        /// The most a weighted mean of clipped updates has, with the quantisation error.
        bound: f64,
    },
}

/// What an honest cohort's mean vector satisfies: the round's clip bound `C`, the sample cap,
/// and the quantiser's resolution (one level, `2C / (2^b − 1)`: the most by which the mean of
/// stochastically rounded vectors differs from the mean of the vectors, per coordinate).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// The round's clip bound `C`.
    pub clip: f32,
    /// The sample count at which a device's weight saturates.
    pub sample_cap: u64,
    /// One quantisation level, in the units of the values.
    pub resolution: f64,
}

/// Relative slack on the clip bound for the rounding of clipping and weighting in `f32`.
const CLIP_SLACK: f64 = 1e-3;

/// `Σ w_k Δ_k / Σ w_k` from the mean of the contributed vectors `[w·Δ, w·C]`, checked against
/// what honest contributors (each with `‖Δ‖ ≤ C` and weight in `[1/cap, 1]`) can give.
///
/// With `r` the resolution, `m` the measured mean weight and `d` the update's length, the mean
/// weight lies in `[1/cap − r/C, 1 + r/C]` and the update's norm is at most
/// `C·(1 + 10⁻³) + r·(1 + √d)/m` (the true weighted mean lies in the ball of radius `C`; the
/// rounding moves the body by at most `r·√d` and the weight by at most `r`). A sum outside
/// these is refused: one device cannot blow the model up or turn the optimiser's state into
/// NaN. Within them a device still moves the mean by up to its weight times `2C / k`; a bound
/// per device needs proofs of well-formed inputs, which SecAgg+ does not have.
///
/// # Errors
/// The first [`DecodeError`] found.
pub fn decode(mean: &[f32], bounds: &Bounds) -> Result<Vec<f32>, DecodeError> {
    let (last, body) = mean.split_last().ok_or(DecodeError::Empty)?;
    let clip = f64::from(bounds.clip);
    let mean_weight = f64::from(*last) / clip;
    let min = (1.0 / bounds.sample_cap.max(1) as f64) - bounds.resolution / clip;
    let max = 1.0 + bounds.resolution / clip;
    if mean_weight.is_nan() || mean_weight <= 0.0 || mean_weight < min || mean_weight > max {
        return Err(DecodeError::MeanWeight {
            got: mean_weight,
            min,
            max,
        });
    }
    let update: Vec<f32> = body
        .iter()
        .map(|&x| (f64::from(x) / mean_weight) as f32)
        .collect();
    if let Some(index) = update.iter().position(|x| !x.is_finite()) {
        return Err(DecodeError::NonFinite { index });
    }
    let norm = update
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    let bound = clip * (1.0 + CLIP_SLACK)
        + bounds.resolution * (1.0 + (body.len() as f64).sqrt()) / mean_weight;
    if norm > bound {
        return Err(DecodeError::Norm { norm, bound });
    }
    Ok(update)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_mean_of_contributions_decodes_to_the_weighted_mean() {
        let clip = 2.0;
        let a = encode(vec![1.0, -1.0], 50, 100, clip);
        let b = encode(vec![0.0, 2.0], 100, 100, clip);
        assert_eq!(a, vec![0.5, -0.5, 1.0]);
        let mean: Vec<f32> = a.iter().zip(&b).map(|(x, y)| (x + y) / 2.0).collect();
        // (0.5·Δa + 1·Δb) / 1.5
        let update = decode(&mean, &bounds(clip, 100)).unwrap();
        assert!((update[0] - 1.0 / 3.0).abs() < 1e-6, "{update:?}");
        assert!((update[1] - 1.0).abs() < 1e-6, "{update:?}");
        assert_eq!(weight(500, 100), 1.0);
        assert_eq!(weight(5, 0), 1.0);
        assert_eq!(vector_len(2), a.len());
    }

    fn bounds(clip: f32, sample_cap: u64) -> Bounds {
        Bounds {
            clip,
            sample_cap,
            resolution: 0.0,
        }
    }

    #[test]
    fn a_weight_outside_what_honest_devices_give_is_refused() {
        assert_eq!(decode(&[], &bounds(1.0, 10)), Err(DecodeError::Empty));
        for w in [0.0, -0.5, f32::NAN, 0.05, 1.01] {
            assert!(
                matches!(
                    decode(&[0.0, w], &bounds(1.0, 10)),
                    Err(DecodeError::MeanWeight { .. })
                ),
                "{w}"
            );
        }
        // The quantisation error widens the interval by one level each way.
        let loose = Bounds {
            resolution: 0.05,
            ..bounds(1.0, 10)
        };
        assert!(decode(&[0.0, 0.05], &loose).is_ok());
        assert!(decode(&[0.0, 1.04], &loose).is_ok());
    }

    #[test]
    fn an_update_longer_than_the_clip_bound_allows_is_refused() {
        let clip = 2.0;
        // Two honest contributions at the clip bound average within it.
        let a = encode(vec![2.0, 0.0], 100, 100, clip);
        let b = encode(vec![0.0, -2.0], 10, 100, clip);
        let mean: Vec<f32> = a.iter().zip(&b).map(|(x, y)| (x + y) / 2.0).collect();
        assert!(decode(&mean, &bounds(clip, 100)).is_ok());
        // One contributor pushing every coordinate to the range's edge is not clipped.
        let c = vec![2.0, 2.0, 0.2];
        let mean: Vec<f32> = a.iter().zip(&c).map(|(x, y)| (x + y) / 2.0).collect();
        assert!(matches!(
            decode(&mean, &bounds(clip, 100)),
            Err(DecodeError::Norm { .. })
        ));
        // A weight that makes the quotient overflow f32.
        assert_eq!(
            decode(&[f32::MAX, 0.2], &bounds(clip, 100)),
            Err(DecodeError::NonFinite { index: 0 })
        );
    }
}
