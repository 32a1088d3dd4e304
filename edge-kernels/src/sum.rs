//! Modular (mod 2^32) sums of `u32` vectors: how the aggregator combines masked inputs.

use crate::KernelError;

/// `acc[i] = acc[i] + v[i] (mod 2^32)`.
///
/// # Errors
/// [`KernelError::LengthMismatch`] if the lengths differ; `acc` is then unchanged.
pub fn add_assign_mod(acc: &mut [u32], v: &[u32]) -> Result<(), KernelError> {
    if acc.len() != v.len() {
        return Err(KernelError::LengthMismatch {
            what: "summand",
            expected: acc.len(),
            actual: v.len(),
        });
    }
    for (a, b) in acc.iter_mut().zip(v) {
        *a = a.wrapping_add(*b);
    }
    Ok(())
}

/// The element-wise sum of `vectors` modulo 2^32. An empty list sums to an empty vector.
///
/// # Errors
/// [`KernelError::LengthMismatch`] if the vectors differ in length.
pub fn sum_mod(vectors: &[&[u32]]) -> Result<Vec<u32>, KernelError> {
    let Some((first, rest)) = vectors.split_first() else {
        return Ok(Vec::new());
    };
    let mut acc = first.to_vec();
    for v in rest {
        add_assign_mod(&mut acc, v)?;
    }
    Ok(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_modulo_two_to_the_32() {
        let mut acc = vec![u32::MAX, 5];
        add_assign_mod(&mut acc, &[2, u32::MAX]).unwrap();
        assert_eq!(acc, vec![1, 4]);
    }

    #[test]
    fn length_mismatch_is_refused_and_leaves_acc_alone() {
        let mut acc = vec![1, 2, 3];
        let err = add_assign_mod(&mut acc, &[1, 2]).unwrap_err();
        assert!(matches!(
            err,
            KernelError::LengthMismatch {
                expected: 3,
                actual: 2,
                ..
            }
        ));
        assert_eq!(acc, vec![1, 2, 3]);
        assert!(sum_mod(&[&[1, 2][..], &[1][..]]).is_err());
    }
}
