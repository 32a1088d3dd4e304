//! L2 clipping of a model update: the bound that fixes the sensitivity of one contribution
//! and keeps every value inside the quantiser's range.

use crate::KernelError;

/// What [`clip_l2`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipOutcome {
    /// The L2 norm of the input, before any scaling.
    pub norm: f64,
    /// Whether the vector was scaled down.
    pub clipped: bool,
}

/// Scales `v` in place so that its L2 norm is at most `max_norm`, and says whether it had to.
///
/// The norm is accumulated in `f64`. A clipped vector is scaled by `max_norm / norm` shrunk by
/// four `f32` ulps, so that rounding each element to `f32` can never push the norm back above
/// the bound.
///
/// # Errors
/// [`KernelError::InvalidNormBound`] unless `max_norm` is positive and finite;
/// [`KernelError::NonFinite`] naming the first NaN or infinite element. `v` is then unchanged.
pub fn clip_l2(v: &mut [f32], max_norm: f32) -> Result<ClipOutcome, KernelError> {
    if !(max_norm.is_finite() && max_norm > 0.0) {
        return Err(KernelError::InvalidNormBound(max_norm));
    }
    let mut sum_sq = 0.0f64;
    for (index, &x) in v.iter().enumerate() {
        if !x.is_finite() {
            return Err(KernelError::NonFinite { index, value: x });
        }
        sum_sq += f64::from(x) * f64::from(x);
    }
    let norm = sum_sq.sqrt();
    let bound = f64::from(max_norm);
    if norm <= bound {
        return Ok(ClipOutcome {
            norm,
            clipped: false,
        });
    }
    let factor = bound / norm * (1.0 - 4.0 * f64::from(f32::EPSILON));
    for x in v.iter_mut() {
        *x = (f64::from(*x) * factor) as f32;
    }
    Ok(ClipOutcome {
        norm,
        clipped: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(v: &[f32]) -> f64 {
        v.iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
            .sqrt()
    }

    #[test]
    fn short_vectors_are_left_alone() {
        let mut v = vec![3.0, 4.0];
        let out = clip_l2(&mut v, 5.0).unwrap();
        assert_eq!(
            out,
            ClipOutcome {
                norm: 5.0,
                clipped: false
            }
        );
        assert_eq!(v, vec![3.0, 4.0]);
    }

    #[test]
    fn long_vectors_are_scaled_to_the_bound_keeping_direction() {
        let mut v = vec![30.0, 40.0];
        let out = clip_l2(&mut v, 5.0).unwrap();
        assert!(out.clipped);
        assert_eq!(out.norm, 50.0);
        assert!(norm(&v) <= 5.0);
        assert!(norm(&v) > 5.0 * (1.0 - 1e-5));
        assert!((v[0] / v[1] - 0.75).abs() < 1e-6);
    }

    #[test]
    fn non_finite_input_is_named_and_nothing_changes() {
        let mut v = vec![1.0, f32::NAN, 2.0];
        let err = clip_l2(&mut v, 1.0).unwrap_err();
        assert!(matches!(err, KernelError::NonFinite { index: 1, .. }));
        assert_eq!(v[0], 1.0);
        assert!(matches!(
            clip_l2(&mut [1.0], 0.0),
            Err(KernelError::InvalidNormBound(_))
        ));
        assert!(matches!(
            clip_l2(&mut [1.0], f32::INFINITY),
            Err(KernelError::InvalidNormBound(_))
        ));
    }
}
