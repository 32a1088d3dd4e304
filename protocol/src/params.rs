//! Round parameters: the neighbour degree `k` and Shamir threshold `t` that make a round both
//! private and able to finish, derived from the number of clients and a threat model.
//!
//! The rule follows Bell et al., "Secure Single-Server Aggregation with (Poly)Logarithmic
//! Overhead" (CCS 2020), as implemented by Google's SecAgg+ parameter finder
//! (`fcp/secagg/server/graph_parameter_finder.cc` in google-parfait/federated-compute). With
//! `n` clients of which at most `γn` are corrupt and at most `δn` drop out, a failure
//! probability `ε = 2^-σ` per event, and `k` neighbours per client on a Harary graph laid over a
//! random permutation of the clients:
//!
//! 1. **Connectivity.** Removing the corrupt and dropped clients must not split the honest
//!    survivors, or the server would learn partial sums. Splitting a Harary graph of degree `k`
//!    takes `k/2` consecutive bad clients at two places of its ring; with `B = ⌈γn⌉ + ⌈δn⌉` bad
//!    clients, a union bound over the `n(n−k−1)/2` pairs of places gives
//!    `P ≤ n(n−k−1)/2 · B!(n−k)! / (n!(B−k)!)`, which must stay below `ε/2`.
//! 2. **Privacy of shares.** The number of corrupt neighbours of a client is hypergeometric
//!    `H(n, ⌈γn⌉, k)`; let `c` be the smallest count with `P[X > c] ≤ ε/(2n)`. An honest client
//!    reveals, for each peer, either its self-mask share or its key share, never both; a server
//!    that colludes with `c` neighbours gets both secrets of a client only if `2t − k ≤ c`. So
//!    `t ≥ ⌊(c + k)/2⌋ + 1`, which also gives `t > k/2` when nobody is corrupt.
//! 3. **Correctness.** The number of surviving neighbours is hypergeometric
//!    `H(n, n − ⌈δn⌉, k)`; `t` must not exceed the largest count `s` with `P[X < s] ≤ ε/n`, or a
//!    survivor's secrets could not be rebuilt.
//!
//! The smallest even `k` (from 2) that satisfies all three is taken, with the smallest allowed
//! `t`. When no `k < n − 1` qualifies (small cohorts), the complete graph `k = n − 1` is used
//! with worst-case counts instead of probabilities: `t ≥ ⌊(⌈γn⌉ + k)/2⌋ + 1` and
//! `t ≤ k − ⌈δn⌉`.
//!
//! Counts of corrupt and dropped clients are rounded up (`⌈γn⌉`, `⌈δn⌉`; Google's finder
//! rounds the corrupt count down), so a small cohort with a 10 % dropout bound is planned for
//! at least one dropout.
//!
//! [`check`] is the client's side of the same rule: it refuses a configuration whose `k` and
//! `t` do not meet conditions 1 and 2 (privacy), whatever the server says. Condition 3 only
//! affects whether the round can finish, which is the server's business.

use serde::{Deserialize, Serialize};

/// Parts per million: how fractions travel, so that every party computes the same bounds.
pub const PPM: u32 = 1_000_000;

/// What a round must withstand. In a configuration file a missing field takes its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct ThreatModel {
    /// Expected fraction of clients that drop out during the round, in parts per million.
    pub dropout_ppm: u32,
    /// Fraction of clients that may collude with the server, in parts per million.
    pub corrupt_ppm: u32,
    /// Target failure probability `2^-failure_bits` for each bad event (default 40).
    pub failure_bits: u32,
}

impl Default for ThreatModel {
    /// 10 % dropout, no corrupt clients, failure probability 2^-40.
    fn default() -> Self {
        Self {
            dropout_ppm: 100_000,
            corrupt_ppm: 0,
            failure_bits: 40,
        }
    }
}

/// Neighbour degree and threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphParams {
    /// Neighbours per client, `k`.
    pub degree: u32,
    /// Shares needed to rebuild a secret, `t`.
    pub threshold: u32,
}

/// Why parameters could not be derived or were refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamError {
    /// The threat model is out of range.
    #[error("threat model out of range: {0}")]
    BadThreatModel(&'static str),
    /// No degree and threshold satisfy the threat model at this cohort size.
    #[error(
        "no safe degree and threshold exist for {clients} clients with {dropout_ppm} ppm dropout and \
         {corrupt_ppm} ppm corrupt clients; lower the dropout or corruption bound"
    )]
    NoSafeParameters {
        /// Cohort size.
        clients: u32,
        /// Dropout bound.
        dropout_ppm: u32,
        /// Corruption bound.
        corrupt_ppm: u32,
    },
    /// `t ≤ k/2`: a server could obtain both secrets of a client from honest neighbours alone.
    #[error(
        "threshold {threshold} is not above half the degree {degree}: unsafe against the server"
    )]
    ThresholdTooLow {
        /// `t`.
        threshold: u32,
        /// `k`.
        degree: u32,
    },
    /// `t` too low for the number of corrupt neighbours a client may have.
    #[error(
        "threshold {threshold} with degree {degree} is too low for up to {corrupt_neighbours} corrupt \
         neighbours: need at least {needed}"
    )]
    ThresholdTooLowForCorruption {
        /// `t`.
        threshold: u32,
        /// `k`.
        degree: u32,
        /// Bound on corrupt neighbours at the target probability.
        corrupt_neighbours: u32,
        /// The least safe threshold.
        needed: u32,
    },
    /// `k` too small: corrupt and dropped clients can split the honest survivors.
    #[error(
        "degree {degree} is too small for {clients} clients: corrupt and dropped clients can \
         disconnect the honest survivors (log2 P = {log2_p:.1}, need < -{bound})"
    )]
    DegreeTooSmall {
        /// `k`.
        degree: u32,
        /// `n`.
        clients: u32,
        /// log2 of the disconnection bound.
        log2_p: f64,
        /// Required bits.
        bound: u32,
    },
    /// `t` outside `1..=k`.
    #[error("threshold {threshold} must be between 1 and the degree {degree}")]
    ThresholdOutOfRange {
        /// `t`.
        threshold: u32,
        /// `k`.
        degree: u32,
    },
}

impl ThreatModel {
    fn validate(&self) -> Result<(), ParamError> {
        if self.dropout_ppm >= PPM {
            return Err(ParamError::BadThreatModel("dropout must be below 100 %"));
        }
        if self.corrupt_ppm >= PPM {
            return Err(ParamError::BadThreatModel("corruption must be below 100 %"));
        }
        if u64::from(self.dropout_ppm) * 2 + u64::from(self.corrupt_ppm) > u64::from(PPM) * 9 / 10 {
            return Err(ParamError::BadThreatModel(
                "corrupt + 2 × dropout must not exceed 90 % (Bell et al.'s feasibility bound)",
            ));
        }
        if !(1..=128).contains(&self.failure_bits) {
            return Err(ParamError::BadThreatModel(
                "failure_bits must be in 1..=128",
            ));
        }
        Ok(())
    }

    /// `⌈γn⌉` corrupt clients among `n`: rounding up is the conservative side for privacy.
    #[must_use]
    pub fn corrupt_count(&self, n: u32) -> u32 {
        (u64::from(n) * u64::from(self.corrupt_ppm)).div_ceil(u64::from(PPM)) as u32
    }

    /// `⌈δn⌉` dropouts among `n`: rounding up is the conservative side for finishing the round.
    #[must_use]
    pub fn dropout_count(&self, n: u32) -> u32 {
        (u64::from(n) * u64::from(self.dropout_ppm)).div_ceil(u64::from(PPM)) as u32
    }

    fn survivor_count(&self, n: u32) -> u32 {
        n - self.dropout_count(n)
    }
}

/// Derives `k` and `t` for `n` clients (see the module documentation).
///
/// # Errors
/// [`ParamError::BadThreatModel`] or [`ParamError::NoSafeParameters`].
pub fn derive(n: u32, threat: &ThreatModel) -> Result<GraphParams, ParamError> {
    threat.validate()?;
    let no_params = ParamError::NoSafeParameters {
        clients: n,
        dropout_ppm: threat.dropout_ppm,
        corrupt_ppm: threat.corrupt_ppm,
    };
    if n < 2 {
        return Err(no_params);
    }
    let lf = LogFactorials::new(n);
    let mut k = 2;
    while k < n - 1 {
        if let Some(t) = harary_threshold(n, k, threat, &lf) {
            return Ok(GraphParams {
                degree: k,
                threshold: t,
            });
        }
        k += 2;
    }
    let k = n - 1;
    let t = complete_graph_min_threshold(n, threat);
    if t <= k.saturating_sub(threat.dropout_count(n)) {
        Ok(GraphParams {
            degree: k,
            threshold: t,
        })
    } else {
        Err(no_params)
    }
}

/// The client's check: refuses `k` and `t` that would let the server (with up to the threat
/// model's corrupt clients) learn an individual input.
///
/// # Errors
/// [`ParamError::ThresholdOutOfRange`], [`ParamError::ThresholdTooLow`],
/// [`ParamError::ThresholdTooLowForCorruption`], [`ParamError::DegreeTooSmall`] or
/// [`ParamError::BadThreatModel`].
pub fn check(n: u32, params: GraphParams, threat: &ThreatModel) -> Result<(), ParamError> {
    threat.validate()?;
    let GraphParams {
        degree: k,
        threshold: t,
    } = params;
    if t == 0 || t > k {
        return Err(ParamError::ThresholdOutOfRange {
            threshold: t,
            degree: k,
        });
    }
    if 2 * t <= k {
        return Err(ParamError::ThresholdTooLow {
            threshold: t,
            degree: k,
        });
    }
    if k + 1 >= n {
        let needed = complete_graph_min_threshold(n, threat);
        if t < needed {
            return Err(ParamError::ThresholdTooLowForCorruption {
                threshold: t,
                degree: k,
                corrupt_neighbours: threat.corrupt_count(n),
                needed,
            });
        }
        return Ok(());
    }
    let lf = LogFactorials::new(n);
    let log_eps = -(f64::from(threat.failure_bits) + 1.0) * std::f64::consts::LN_2;
    let log_p = log_prob_disconnected(n, k, threat, &lf);
    if log_p >= log_eps {
        return Err(ParamError::DegreeTooSmall {
            degree: k,
            clients: n,
            log2_p: log_p / std::f64::consts::LN_2,
            bound: threat.failure_bits + 1,
        });
    }
    let c = corrupt_neighbour_bound(n, k, threat, &lf);
    let needed = (c + k) / 2 + 1;
    if t < needed {
        return Err(ParamError::ThresholdTooLowForCorruption {
            threshold: t,
            degree: k,
            corrupt_neighbours: c,
            needed,
        });
    }
    Ok(())
}

fn complete_graph_min_threshold(n: u32, threat: &ThreatModel) -> u32 {
    (threat.corrupt_count(n) + (n - 1)) / 2 + 1
}

fn harary_threshold(n: u32, k: u32, threat: &ThreatModel, lf: &LogFactorials) -> Option<u32> {
    let log_eps = -(f64::from(threat.failure_bits) + 1.0) * std::f64::consts::LN_2;
    if log_prob_disconnected(n, k, threat, lf) >= log_eps {
        return None;
    }
    let c = corrupt_neighbour_bound(n, k, threat, lf);
    let t_min = ((c + k) / 2 + 1).max(2);
    let surv = Hypergeometric {
        population: n,
        successes: threat.survivor_count(n),
        draws: k,
    };
    let eps_n =
        (f64::from(threat.failure_bits) * -std::f64::consts::LN_2 - f64::from(n).ln()).exp();
    // t_min is allowed when P[surviving neighbours < t_min] <= eps / n.
    (t_min <= k && surv.cdf_below(t_min, lf) <= eps_n).then_some(t_min)
}

/// Smallest `c` with `P[corrupt neighbours > c] ≤ 2^-(σ+1) / n`.
fn corrupt_neighbour_bound(n: u32, k: u32, threat: &ThreatModel, lf: &LogFactorials) -> u32 {
    let adv = Hypergeometric {
        population: n,
        successes: threat.corrupt_count(n),
        draws: k,
    };
    let eps = (-(f64::from(threat.failure_bits) + 1.0) * std::f64::consts::LN_2
        - f64::from(n).ln())
    .exp();
    // Walk down from the top of the distribution, accumulating P[X > c].
    let mut tail = 0.0;
    for c in (0..k).rev() {
        tail += adv.pmf(c + 1, lf);
        if tail > eps {
            return c + 1;
        }
    }
    0
}

fn log_prob_disconnected(n: u32, k: u32, threat: &ThreatModel, lf: &LogFactorials) -> f64 {
    let bad = threat.corrupt_count(n) + threat.dropout_count(n);
    if k > bad {
        return f64::NEG_INFINITY;
    }
    let pairs = f64::from(n).ln() + f64::from(n - k - 1).ln() - std::f64::consts::LN_2;
    pairs + lf.get(bad) + lf.get(n - k) - lf.get(n) - lf.get(bad - k)
}

/// `ln(i!)` for `i ≤ n`.
struct LogFactorials(Vec<f64>);

impl LogFactorials {
    fn new(n: u32) -> Self {
        let mut v = Vec::with_capacity(n as usize + 1);
        let mut acc = 0.0;
        v.push(0.0);
        for i in 1..=n {
            acc += f64::from(i).ln();
            v.push(acc);
        }
        Self(v)
    }

    fn get(&self, i: u32) -> f64 {
        self.0.get(i as usize).copied().unwrap_or(f64::INFINITY)
    }

    fn ln_choose(&self, a: u32, b: u32) -> f64 {
        if b > a {
            return f64::NEG_INFINITY;
        }
        self.get(a) - self.get(b) - self.get(a - b)
    }
}

struct Hypergeometric {
    population: u32,
    successes: u32,
    draws: u32,
}

impl Hypergeometric {
    fn pmf(&self, x: u32, lf: &LogFactorials) -> f64 {
        let Self {
            population: n,
            successes: s,
            draws: k,
        } = *self;
        if x > k || x > s || k - x > n - s {
            return 0.0;
        }
        (lf.ln_choose(s, x) + lf.ln_choose(n - s, k - x) - lf.ln_choose(n, k)).exp()
    }

    /// `P[X < s]`.
    fn cdf_below(&self, s: u32, lf: &LogFactorials) -> f64 {
        (0..s).map(|x| self.pmf(x, lf)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_parameters_pass_the_clients_check() {
        for n in [5u32, 10, 50, 100, 500, 1000, 5000] {
            for threat in [
                ThreatModel::default(),
                ThreatModel {
                    dropout_ppm: 50_000,
                    corrupt_ppm: 100_000,
                    failure_bits: 40,
                },
                ThreatModel {
                    dropout_ppm: 300_000,
                    corrupt_ppm: 0,
                    failure_bits: 40,
                },
            ] {
                if n == 5 && threat.dropout_ppm == 300_000 {
                    // Two of five may vanish: no t > k/2 survives that.
                    assert!(derive(n, &threat).is_err());
                    continue;
                }
                let p = derive(n, &threat).unwrap();
                assert!(2 * p.threshold > p.degree, "n {n}: {p:?}");
                assert!(p.degree < n, "n {n}: {p:?}");
                check(n, p, &threat).unwrap();
            }
        }
    }

    #[test]
    fn tiny_cohorts_cannot_survive_a_dropout_and_say_so() {
        // Two or three clients cannot lose one and still keep t > k/2 holders of each secret.
        for n in [2, 3] {
            assert!(matches!(
                derive(n, &ThreatModel::default()),
                Err(ParamError::NoSafeParameters { .. })
            ));
        }
        let no_dropout = ThreatModel {
            dropout_ppm: 0,
            ..ThreatModel::default()
        };
        assert_eq!(
            derive(2, &no_dropout).unwrap(),
            GraphParams {
                degree: 1,
                threshold: 1
            }
        );
        assert_eq!(
            derive(3, &no_dropout).unwrap(),
            GraphParams {
                degree: 2,
                threshold: 2
            }
        );
        assert_eq!(
            derive(5, &ThreatModel::default()).unwrap(),
            GraphParams {
                degree: 4,
                threshold: 3
            }
        );
    }

    #[test]
    fn large_cohorts_get_logarithmic_degrees() {
        let p = derive(1000, &ThreatModel::default()).unwrap();
        assert!(p.degree < 100, "{p:?}");
        let q = derive(5000, &ThreatModel::default()).unwrap();
        assert!(q.degree < 150 && q.degree >= p.degree, "{q:?}");
    }

    #[test]
    fn unsafe_configurations_are_refused() {
        let t = ThreatModel::default();
        assert_eq!(
            check(
                100,
                GraphParams {
                    degree: 10,
                    threshold: 5
                },
                &t
            ),
            Err(ParamError::ThresholdTooLow {
                threshold: 5,
                degree: 10
            })
        );
        assert!(matches!(
            check(
                1000,
                GraphParams {
                    degree: 4,
                    threshold: 3
                },
                &t
            ),
            Err(ParamError::DegreeTooSmall { degree: 4, .. })
        ));
        let corrupt = ThreatModel {
            corrupt_ppm: 200_000,
            ..t
        };
        let p = derive(1000, &t).unwrap();
        assert!(matches!(
            check(1000, p, &corrupt),
            Err(ParamError::ThresholdTooLowForCorruption { .. })
                | Err(ParamError::DegreeTooSmall { .. })
        ));
        assert!(matches!(
            check(
                10,
                GraphParams {
                    degree: 9,
                    threshold: 10
                },
                &t
            ),
            Err(ParamError::ThresholdOutOfRange { .. })
        ));
        let bad = ThreatModel {
            dropout_ppm: 500_000,
            ..t
        };
        assert!(matches!(
            derive(100, &bad),
            Err(ParamError::BadThreatModel(_))
        ));
    }
}
