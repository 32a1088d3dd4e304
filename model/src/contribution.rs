//! The vector an agent contributes to a secure round, and what the aggregator makes of their
//! sum: the one definition both sides (and the tests that check the secure sum against the
//! clear one) use.
//!
//! An agent with update `Δ` (already clipped to L2 norm `C`, the round's clip bound and the
//! quantiser's range) and `n` training samples contributes `[w·Δ, w·C]` with
//! `w = min(n, cap) / cap`: a vector one longer than the model. Summed under SecAgg+ (and
//! averaged over the `k` contributors), the last coordinate is `C·Σw/k`, so the aggregator
//! learns `Σ w_k Δ_k` and `Σ w_k`, and never one device's sample count. The FedAvg update is
//! their quotient, [`decode`].

use crate::ModelError;

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

/// `Σ w_k Δ_k / Σ w_k` from the mean of the contributed vectors `[w·Δ, w·C]`.
///
/// # Errors
/// [`ModelError::Aggregate`] when `mean` is empty or its weight coordinate does not give a
/// positive mean weight.
pub fn decode(mean: &[f32], clip: f32) -> Result<Vec<f32>, ModelError> {
    let (last, body) = mean
        .split_last()
        .ok_or_else(|| ModelError::Aggregate("an empty sum".into()))?;
    let mean_weight = f64::from(*last) / f64::from(clip);
    if mean_weight.is_nan() || mean_weight <= 0.0 {
        return Err(ModelError::Aggregate(format!(
            "the mean weight {mean_weight} is not positive"
        )));
    }
    Ok(body
        .iter()
        .map(|&x| (f64::from(x) / mean_weight) as f32)
        .collect())
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
        let update = decode(&mean, clip).unwrap();
        assert!((update[0] - 1.0 / 3.0).abs() < 1e-6, "{update:?}");
        assert!((update[1] - 1.0).abs() < 1e-6, "{update:?}");
        assert_eq!(weight(500, 100), 1.0);
        assert_eq!(weight(5, 0), 1.0);
        assert_eq!(vector_len(2), a.len());
    }

    #[test]
    fn a_non_positive_weight_is_refused() {
        assert!(decode(&[], 1.0).is_err());
        assert!(decode(&[1.0, 0.0], 1.0).is_err());
        assert!(decode(&[1.0, -0.5], 1.0).is_err());
        assert!(decode(&[1.0, f32::NAN], 1.0).is_err());
    }
}
