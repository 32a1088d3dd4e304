//! Shamir secret sharing of 32-byte secrets over the prime field GF(2^61 − 1).
//!
//! A secret is cut into five limbs of at most 56 bits (7 bytes each, the last one 4), each
//! shared with its own random polynomial of degree `t − 1`; a share is the five evaluations at
//! the holder's x-coordinate (its client index + 1, never 0). Any `t` shares rebuild the
//! secret by Lagrange interpolation at 0; fewer reveal nothing about it. Shares beyond the
//! first `t` are checked against the interpolated polynomial, so a corrupted share is detected
//! rather than silently rebuilding a wrong secret. When the caller can recognise the right
//! secret (it rebuilds a key whose public half, or a seed whose commitment, it knows),
//! [`reconstruct_checked`] also finds it despite corrupted shares, given a surplus, and names
//! the holders whose shares were wrong.

use rand_core::Rng;
use serde::{Deserialize, Serialize};

/// The field modulus, the Mersenne prime 2^61 − 1.
const P: u64 = (1 << 61) - 1;
/// Limbs per 32-byte secret.
pub const LIMBS: usize = 5;
/// Bytes per limb.
const LIMB_BYTES: usize = 7;

/// One holder's share of one 32-byte secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    /// The evaluation point: holder index + 1.
    pub x: u64,
    /// The polynomial values at `x`, one per limb.
    pub y: [u64; LIMBS],
}

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Share")
            .field("x", &self.x)
            .field("y", &"<redacted>")
            .finish()
    }
}

/// Why a secret could not be rebuilt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShamirError {
    /// Fewer shares than the threshold.
    #[error("{have} shares, {need} needed")]
    NotEnoughShares {
        /// Shares given.
        have: usize,
        /// Threshold.
        need: usize,
    },
    /// Two shares with the same x, x = 0 or a value outside the field.
    #[error("invalid share at x = {0}")]
    InvalidShare(u64),
    /// The shares do not lie on one polynomial of degree t − 1, or rebuild an impossible secret.
    #[error("shares are inconsistent: at least one was corrupted")]
    Inconsistent,
    /// Threshold 0 or above the number of holders.
    #[error("threshold {threshold} is impossible with {holders} holders")]
    BadThreshold {
        /// Threshold asked for.
        threshold: usize,
        /// Holders.
        holders: usize,
    },
}

/// Shares `secret` among holders at x-coordinates `xs` (each non-zero and distinct) with
/// threshold `t`, drawing polynomial coefficients from `rng`.
///
/// # Errors
/// [`ShamirError::BadThreshold`] or [`ShamirError::InvalidShare`] for a bad x.
pub fn split<R: Rng + ?Sized>(
    secret: &[u8; 32],
    t: usize,
    xs: &[u64],
    rng: &mut R,
) -> Result<Vec<Share>, ShamirError> {
    if t == 0 || t > xs.len() {
        return Err(ShamirError::BadThreshold {
            threshold: t,
            holders: xs.len(),
        });
    }
    check_xs(xs)?;
    let limbs = to_limbs(secret);
    // coefficients[l][0] is the limb itself; the others are uniform in the field.
    let coefficients: Vec<Vec<u64>> = limbs
        .iter()
        .map(|&c0| {
            std::iter::once(c0)
                .chain((1..t).map(|_| random_element(rng)))
                .collect()
        })
        .collect();
    Ok(xs
        .iter()
        .map(|&x| Share {
            x,
            y: std::array::from_fn(|l| eval(&coefficients[l], x)),
        })
        .collect())
}

/// Rebuilds a secret from at least `t` shares; extra shares are checked for consistency.
///
/// # Errors
/// [`ShamirError`] naming the problem.
pub fn reconstruct(shares: &[Share], t: usize) -> Result<[u8; 32], ShamirError> {
    if t == 0 {
        return Err(ShamirError::BadThreshold {
            threshold: t,
            holders: shares.len(),
        });
    }
    if shares.len() < t {
        return Err(ShamirError::NotEnoughShares {
            have: shares.len(),
            need: t,
        });
    }
    let xs: Vec<u64> = shares.iter().map(|s| s.x).collect();
    check_xs(&xs)?;
    if shares.iter().any(|s| s.y.iter().any(|&v| v >= P)) {
        return Err(ShamirError::Inconsistent);
    }
    let (basis, extra) = shares.split_at(t);
    let lagrange = Basis::new(basis.iter().map(|s| s.x).collect());
    let at_zero = lagrange.weights_at(0);
    let limbs: [u64; LIMBS] = std::array::from_fn(|l| dot(&at_zero, basis.iter().map(|s| s.y[l])));
    for s in extra {
        let w = lagrange.weights_at(s.x);
        for (l, &y) in s.y.iter().enumerate() {
            if dot(&w, basis.iter().map(|b| b.y[l])) != y {
                return Err(ShamirError::Inconsistent);
            }
        }
    }
    from_limbs(&limbs).ok_or(ShamirError::Inconsistent)
}

/// Most `t`-subsets [`reconstruct_checked`] tries before it gives up.
pub const MAX_SUBSETS: usize = 4096;

/// A secret rebuilt by [`reconstruct_checked`] and the shares found wrong: values outside the
/// field, and, when at most `(m − t)/2` of the `m` shares disagree with the polynomial found,
/// those that disagree.
#[derive(Debug)]
pub struct Recovered {
    /// The secret.
    pub secret: zeroize::Zeroizing<[u8; 32]>,
    /// The x-coordinates of the shares that disagree with it: their holders lied, or what they
    /// sent was corrupted on the way.
    pub wrong: Vec<u64>,
}

/// Rebuilds the secret that `is_right` recognises from at least `t` shares, some of which may
/// be corrupted: tries `t`-subsets (in order, at most [`MAX_SUBSETS`]) until one rebuilds a
/// secret `is_right` accepts. With exactly `t` shares one corrupted share cannot be corrected,
/// only detected.
///
/// # Errors
/// [`ShamirError::NotEnoughShares`], [`ShamirError::InvalidShare`] (repeated or zero x), or
/// [`ShamirError::Inconsistent`] when no subset tried rebuilds an accepted secret: the caller
/// must refuse rather than use a wrong one.
pub fn reconstruct_checked(
    shares: &[Share],
    t: usize,
    is_right: impl Fn(&[u8; 32]) -> bool,
) -> Result<Recovered, ShamirError> {
    if t == 0 {
        return Err(ShamirError::BadThreshold {
            threshold: t,
            holders: shares.len(),
        });
    }
    let xs: Vec<u64> = shares.iter().map(|s| s.x).collect();
    check_xs(&xs)?;
    // A value outside the field is corrupted whatever the polynomial.
    let (usable, mut wrong): (Vec<&Share>, Vec<&Share>) =
        shares.iter().partition(|s| s.y.iter().all(|&v| v < P));
    if usable.len() < t {
        return Err(ShamirError::NotEnoughShares {
            have: usable.len(),
            need: t,
        });
    }
    let mut pick: Vec<usize> = (0..t).collect();
    for _ in 0..MAX_SUBSETS {
        let basis: Vec<&Share> = pick.iter().map(|&i| usable[i]).collect();
        let lagrange = Basis::new(basis.iter().map(|s| s.x).collect());
        let at_zero = lagrange.weights_at(0);
        let limbs: [u64; LIMBS] =
            std::array::from_fn(|l| dot(&at_zero, basis.iter().map(|s| s.y[l])));
        if let Some(secret) = from_limbs(&limbs).map(zeroize::Zeroizing::new)
            && is_right(&secret)
        {
            let off: Vec<&Share> = usable
                .iter()
                .copied()
                .filter(|s| {
                    let w = lagrange.weights_at(s.x);
                    (0..LIMBS).any(|l| dot(&w, basis.iter().map(|b| b.y[l])) != s.y[l])
                })
                .collect();
            // Within the unique-decoding radius (at most (m − t)/2 shares off) the
            // polynomial found is the dealer's, so the shares off it are exactly the wrong
            // ones; beyond it a basis of colluding shares could frame honest holders, so
            // nobody is named (the secret itself is still the right one).
            if 2 * off.len() <= usable.len() - t {
                wrong.extend(off);
            }
            let mut wrong: Vec<u64> = wrong.iter().map(|s| s.x).collect();
            wrong.sort_unstable();
            return Ok(Recovered { secret, wrong });
        }
        if !next_subset(&mut pick, usable.len()) {
            break;
        }
    }
    Err(ShamirError::Inconsistent)
}

/// Advances `pick` (strictly increasing indices below `m`) to the next subset of its size in
/// lexicographic order; `false` after the last.
fn next_subset(pick: &mut [usize], m: usize) -> bool {
    let t = pick.len();
    let Some(i) = (0..t).rev().find(|&i| pick[i] < m - t + i) else {
        return false;
    };
    pick[i] += 1;
    for j in i + 1..t {
        pick[j] = pick[j - 1] + 1;
    }
    true
}

fn check_xs(xs: &[u64]) -> Result<(), ShamirError> {
    let mut sorted = xs.to_vec();
    sorted.sort_unstable();
    for (i, &x) in sorted.iter().enumerate() {
        if x == 0 || x >= P || (i > 0 && sorted[i - 1] == x) {
            return Err(ShamirError::InvalidShare(x));
        }
    }
    Ok(())
}

fn to_limbs(secret: &[u8; 32]) -> [u64; LIMBS] {
    std::array::from_fn(|l| {
        let mut b = [0u8; 8];
        let start = l * LIMB_BYTES;
        let end = (start + LIMB_BYTES).min(32);
        b[..end - start].copy_from_slice(&secret[start..end]);
        u64::from_le_bytes(b)
    })
}

fn from_limbs(limbs: &[u64; LIMBS]) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    for (l, &v) in limbs.iter().enumerate() {
        let start = l * LIMB_BYTES;
        let len = (start + LIMB_BYTES).min(32) - start;
        if v >> (8 * len) != 0 {
            return None;
        }
        out[start..start + len].copy_from_slice(&v.to_le_bytes()[..len]);
    }
    Some(out)
}

fn random_element<R: Rng + ?Sized>(rng: &mut R) -> u64 {
    loop {
        let v = rng.next_u64() >> 3;
        if v < P {
            return v;
        }
    }
}

fn add(a: u64, b: u64) -> u64 {
    let s = a + b;
    if s >= P { s - P } else { s }
}

fn sub(a: u64, b: u64) -> u64 {
    if a >= b { a - b } else { a + P - b }
}

fn mul(a: u64, b: u64) -> u64 {
    let x = u128::from(a) * u128::from(b);
    add((x as u64) & P, (x >> 61) as u64)
}

fn pow(mut base: u64, mut e: u64) -> u64 {
    let mut acc = 1;
    while e > 0 {
        if e & 1 == 1 {
            acc = mul(acc, base);
        }
        base = mul(base, base);
        e >>= 1;
    }
    acc
}

fn inv(a: u64) -> u64 {
    pow(a, P - 2)
}

/// Horner evaluation of a polynomial (lowest coefficient first) at `x`.
fn eval(coefficients: &[u64], x: u64) -> u64 {
    coefficients
        .iter()
        .rev()
        .fold(0, |acc, &c| add(mul(acc, x), c))
}

/// The Lagrange basis of distinct points `xs`, in barycentric form: `w_j = 1 / Π_{m≠j}
/// (x_j − x_m)`, computed once (`t²` products and one inversion), so that the weights at any
/// further point cost `O(t)` products and one inversion instead of `t` inversions and `2t²`
/// products. The surplus check evaluates the polynomial at every spare share's point.
struct Basis {
    xs: Vec<u64>,
    w: Vec<u64>,
}

impl Basis {
    fn new(xs: Vec<u64>) -> Self {
        let mut w: Vec<u64> = xs
            .iter()
            .enumerate()
            .map(|(j, &xj)| {
                xs.iter()
                    .enumerate()
                    .filter(|&(m, _)| m != j)
                    .fold(1, |acc, (_, &xm)| mul(acc, sub(xj, xm)))
            })
            .collect();
        invert_all(&mut w);
        Self { xs, w }
    }

    /// The weights `L_j(at)`, so that `p(at) = Σ L_j(at) · y_j`.
    fn weights_at(&self, at: u64) -> Vec<u64> {
        if let Some(j) = self.xs.iter().position(|&x| x == at) {
            return (0..self.xs.len()).map(|m| u64::from(m == j)).collect();
        }
        let mut d: Vec<u64> = self.xs.iter().map(|&x| sub(at, x)).collect();
        let ell = d.iter().fold(1, |acc, &v| mul(acc, v));
        invert_all(&mut d);
        d.iter()
            .zip(&self.w)
            .map(|(&inv_d, &w)| mul(ell, mul(w, inv_d)))
            .collect()
    }
}

/// Replaces every value by its inverse with one field inversion (Montgomery's trick). The
/// values are non-zero: differences of distinct points.
fn invert_all(values: &mut [u64]) {
    let mut prefix = Vec::with_capacity(values.len());
    let mut acc = 1;
    for &v in values.iter() {
        prefix.push(acc);
        acc = mul(acc, v);
    }
    let mut inv_acc = inv(acc);
    for (v, before) in values.iter_mut().zip(prefix).rev() {
        let inverse = mul(inv_acc, before);
        inv_acc = mul(inv_acc, *v);
        *v = inverse;
    }
}

fn dot(weights: &[u64], ys: impl Iterator<Item = u64>) -> u64 {
    weights
        .iter()
        .zip(ys)
        .fold(0, |acc, (&w, y)| add(acc, mul(w, y)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn rng() -> ChaCha20Rng {
        ChaCha20Rng::from_seed([4; 32])
    }

    #[test]
    fn checked_reconstruction_corrects_with_a_surplus_and_refuses_without_one() {
        let secret: [u8; 32] = std::array::from_fn(|i| (i * 11 + 3) as u8);
        let xs: Vec<u64> = (1..=8).collect();
        let shares = split(&secret, 4, &xs, &mut rng()).unwrap();
        let is_right = |s: &[u8; 32]| *s == secret;
        // Two corrupted shares among eight, one of them in the first subset tried, one with a
        // value outside the field: the secret is found and both holders are named.
        let mut bad = shares.clone();
        bad[1].y[0] = add(bad[1].y[0], 5);
        bad[6].y[4] = P + 1;
        let got = reconstruct_checked(&bad, 4, is_right).unwrap();
        assert_eq!(*got.secret, secret);
        assert_eq!(got.wrong, vec![2, 7]);
        // Honest shares: nothing named.
        assert!(
            reconstruct_checked(&shares, 4, is_right)
                .unwrap()
                .wrong
                .is_empty()
        );
        // Exactly t shares with one corrupted: no subset rebuilds the right secret; refused,
        // never a wrong one.
        assert_eq!(
            reconstruct_checked(&bad[..4], 4, is_right).unwrap_err(),
            ShamirError::Inconsistent
        );
        // More corrupted shares than honest ones can outvote: refused too (distinct errors:
        // equal errors on equally spaced points can cancel at 0 and rebuild the right secret,
        // which the check would accept, naming nobody).
        let mut worse = shares.clone();
        for (i, s) in worse.iter_mut().take(5).enumerate() {
            s.y[3] = add(s.y[3], 1000 + 31 * (i as u64) * (i as u64));
        }
        assert_eq!(
            reconstruct_checked(&worse, 4, is_right).unwrap_err(),
            ShamirError::Inconsistent
        );
    }

    #[test]
    fn any_t_shares_rebuild_the_secret_and_extras_are_checked() {
        let secret: [u8; 32] = std::array::from_fn(|i| (i * 37 + 255) as u8);
        let xs: Vec<u64> = (1..=7).collect();
        let shares = split(&secret, 4, &xs, &mut rng()).unwrap();
        assert_eq!(reconstruct(&shares[3..7], 4).unwrap(), secret);
        assert_eq!(
            reconstruct(
                &[
                    shares[6].clone(),
                    shares[0].clone(),
                    shares[2].clone(),
                    shares[5].clone()
                ],
                4
            )
            .unwrap(),
            secret
        );
        assert_eq!(reconstruct(&shares, 4).unwrap(), secret);
        assert_eq!(
            reconstruct(&shares[..3], 4),
            Err(ShamirError::NotEnoughShares { have: 3, need: 4 })
        );
        let mut bad = shares.clone();
        bad[5].y[2] = add(bad[5].y[2], 1);
        assert_eq!(reconstruct(&bad, 4), Err(ShamirError::Inconsistent));
    }

    #[test]
    fn malformed_shares_are_refused() {
        let s = split(&[9; 32], 2, &[1, 2, 3], &mut rng()).unwrap();
        let dup = [s[0].clone(), s[0].clone()];
        assert_eq!(reconstruct(&dup, 2), Err(ShamirError::InvalidShare(1)));
        assert!(split(&[9; 32], 2, &[0, 1], &mut rng()).is_err());
        assert!(split(&[9; 32], 4, &[1, 2, 3], &mut rng()).is_err());
        let mut out_of_field = s[1].clone();
        out_of_field.y[0] = P;
        assert_eq!(
            reconstruct(&[s[0].clone(), out_of_field], 2),
            Err(ShamirError::Inconsistent)
        );
    }

    #[test]
    fn field_arithmetic_is_sound() {
        for a in [1u64, 2, 12345, P - 1, 1 << 60] {
            assert_eq!(mul(a, inv(a)), 1, "{a}");
            assert_eq!(add(sub(7, a), a), 7);
        }
        assert_eq!(mul(P - 1, P - 1), 1);
    }

    proptest! {
        #[test]
        fn round_trip(secret in any::<[u8; 32]>(), t in 1usize..8, extra in 0usize..4, seed in any::<[u8; 32]>()) {
            let xs: Vec<u64> = (1..=(t + extra) as u64).map(|x| x * 3).collect();
            let shares = split(&secret, t, &xs, &mut ChaCha20Rng::from_seed(seed)).unwrap();
            prop_assert_eq!(reconstruct(&shares, t).unwrap(), secret);
            prop_assert_eq!(reconstruct(&shares[extra..], t).unwrap(), secret);
        }

        #[test]
        fn barycentric_weights_are_the_lagrange_weights(
            xs in proptest::collection::btree_set(1u64..P, 1..40),
            at in 0u64..P,
        ) {
            let xs: Vec<u64> = xs.into_iter().collect();
            // The textbook definition: L_j(at) = Π_{m≠j} (at − x_m) / (x_j − x_m).
            let textbook: Vec<u64> = xs
                .iter()
                .enumerate()
                .map(|(j, &xj)| {
                    let (mut num, mut den) = (1, 1);
                    for (m, &xm) in xs.iter().enumerate() {
                        if m != j {
                            num = mul(num, sub(at, xm));
                            den = mul(den, sub(xj, xm));
                        }
                    }
                    mul(num, inv(den))
                })
                .collect();
            let basis = Basis::new(xs.clone());
            prop_assert_eq!(basis.weights_at(at), textbook);
            prop_assert_eq!(&basis.weights_at(xs[0])[..1], &[1][..]);
        }
    }
}
