//! The server optimiser (`[server_optimizer]`): how a round's FedAvg update, the weighted mean
//! `Δ` of the clients' deltas, moves the global model.
//!
//! - `fedavg` (default): `x ← x + η·Δ`; η = 1 is McMahan et al.'s FedAvg.
//! - `fedadam` (Reddi et al., "Adaptive Federated Optimization", ICLR 2021):
//!   `m ← β₁m + (1−β₁)Δ`, `v ← β₂v + (1−β₂)Δ²`, `x ← x + η·m / (√v + τ)`, with `m` and `v`
//!   starting at 0 and no bias correction (as in the paper).
//!
//! FedAdam's moments are the only state a round hands to the next besides the model. They are
//! kept in the model store as two more content-addressed files named in `state.json`, so the
//! aggregator stays restartable from its store alone.

use flock_model::{ModelError, Params};
use serde::{Deserialize, Serialize};

/// `[server_optimizer]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum ServerOptimizer {
    /// `x ← x + η·Δ`.
    #[serde(rename = "fedavg")]
    FedAvg {
        /// η (server learning rate); 1 by default.
        #[serde(default = "one")]
        learning_rate: f32,
    },
    /// FedAdam.
    #[serde(rename = "fedadam")]
    FedAdam {
        /// η; 0.01 by default.
        #[serde(default = "default_adam_lr")]
        learning_rate: f32,
        /// β₁; 0.9 by default.
        #[serde(default = "default_beta1")]
        beta1: f32,
        /// β₂; 0.99 by default.
        #[serde(default = "default_beta2")]
        beta2: f32,
        /// τ, the adaptivity floor; 0.001 by default.
        #[serde(default = "default_tau")]
        tau: f32,
    },
}

fn one() -> f32 {
    1.0
}
fn default_adam_lr() -> f32 {
    0.01
}
fn default_beta1() -> f32 {
    0.9
}
fn default_beta2() -> f32 {
    0.99
}
fn default_tau() -> f32 {
    1e-3
}

impl Default for ServerOptimizer {
    fn default() -> Self {
        Self::FedAvg { learning_rate: 1.0 }
    }
}

/// FedAdam's first and second moments, laid out like the model.
#[derive(Clone, Debug, PartialEq)]
pub struct Moments {
    /// `m`.
    pub first: Params,
    /// `v`.
    pub second: Params,
}

impl ServerOptimizer {
    /// The key (under `server_optimizer`) and the reason of the first value that cannot work.
    pub fn invalid(&self) -> Option<(&'static str, String)> {
        let positive = |key, x: f32| {
            (!(x.is_finite() && x > 0.0)).then(|| (key, format!("{x} is not a positive number")))
        };
        let unit = |key, x: f32| {
            (!(0.0..1.0).contains(&x)).then(|| (key, format!("{x} is not in [0, 1)")))
        };
        match *self {
            Self::FedAvg { learning_rate } => {
                positive("server_optimizer.learning_rate", learning_rate)
            }
            Self::FedAdam {
                learning_rate,
                beta1,
                beta2,
                tau,
            } => positive("server_optimizer.learning_rate", learning_rate)
                .or_else(|| unit("server_optimizer.beta1", beta1))
                .or_else(|| unit("server_optimizer.beta2", beta2))
                .or_else(|| positive("server_optimizer.tau", tau)),
        }
    }

    /// The next global model from `global` and the round's update `delta`; `moments` are the
    /// previous round's (FedAdam; `None` in its first round), and the new ones are returned.
    pub fn step(
        &self,
        global: &Params,
        delta: &[f32],
        moments: Option<&Moments>,
    ) -> Result<(Params, Option<Moments>), ModelError> {
        match *self {
            Self::FedAvg { learning_rate } => Ok((global.with_update(delta, learning_rate)?, None)),
            Self::FedAdam {
                learning_rate,
                beta1,
                beta2,
                tau,
            } => {
                let (m, v) = match moments {
                    Some(mo) => (mo.first.values(), mo.second.values()),
                    None => (&[][..], &[][..]),
                };
                // No moments yet: both start at zero.
                let fresh = moments.is_none();
                let at = |x: &[f32], i: usize| if fresh { 0.0 } else { x[i] };
                if !fresh && (m.len() != delta.len() || v.len() != delta.len()) {
                    return Err(ModelError::WrongLength {
                        expected: delta.len(),
                        got: m.len().min(v.len()),
                    });
                }
                let first: Vec<f32> = (0..delta.len())
                    .map(|i| beta1 * at(m, i) + (1.0 - beta1) * delta[i])
                    .collect();
                let second: Vec<f32> = (0..delta.len())
                    .map(|i| beta2 * at(v, i) + (1.0 - beta2) * delta[i] * delta[i])
                    .collect();
                let step: Vec<f32> = first
                    .iter()
                    .zip(&second)
                    .map(|(m, v)| m / (v.sqrt() + tau))
                    .collect();
                let next = global.with_update(&step, learning_rate)?;
                let spec = global.spec().clone();
                Ok((
                    next,
                    Some(Moments {
                        first: Params::new(spec.clone(), first)?,
                        second: Params::new(spec, second)?,
                    }),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use flock_model::ModelSpec;

    use super::*;

    fn model() -> Params {
        Params::init(&ModelSpec::default_mlp(3, 2), 1).unwrap()
    }

    #[test]
    fn fedavg_moves_by_eta_times_the_mean() {
        let g = model();
        let delta: Vec<f32> = (0..g.len()).map(|i| i as f32 * 1e-3).collect();
        let (next, moments) = ServerOptimizer::FedAvg { learning_rate: 0.5 }
            .step(&g, &delta, None)
            .unwrap();
        assert!(moments.is_none());
        assert_eq!(next, g.with_update(&delta, 0.5).unwrap());
    }

    #[test]
    fn fedadam_follows_reddi_et_al_over_two_rounds() {
        let g = model();
        let opt = ServerOptimizer::FedAdam {
            learning_rate: 0.01,
            beta1: 0.9,
            beta2: 0.99,
            tau: 1e-3,
        };
        let d1: Vec<f32> = (0..g.len()).map(|i| (i as f32 - 20.0) * 1e-2).collect();
        let d2: Vec<f32> = (0..g.len()).map(|i| ((i * 7) % 5) as f32 * 1e-2).collect();
        let (x1, mo1) = opt.step(&g, &d1, None).unwrap();
        let (x2, mo2) = opt.step(&x1, &d2, mo1.as_ref()).unwrap();
        // The same recurrence in f64, element by element.
        for i in 0..g.len() {
            let (a, b) = (f64::from(d1[i]), f64::from(d2[i]));
            let (m1, v1) = (0.1 * a, 0.01 * a * a);
            let x1e = f64::from(g.values()[i]) + 0.01 * m1 / (v1.sqrt() + 1e-3);
            let (m2, v2) = (0.9 * m1 + 0.1 * b, 0.99 * v1 + 0.01 * b * b);
            let x2e = x1e + 0.01 * m2 / (v2.sqrt() + 1e-3);
            assert!((f64::from(x2.values()[i]) - x2e).abs() < 1e-6, "{i}");
            let mo = mo2.as_ref().unwrap();
            assert!((f64::from(mo.first.values()[i]) - m2).abs() < 1e-7);
            assert!((f64::from(mo.second.values()[i]) - v2).abs() < 1e-7);
        }
        // Adaptive: the first step is about η·sign(Δ) wherever |Δ| ≫ τ.
        let big = (0..g.len()).find(|&i| d1[i].abs() > 0.05).unwrap();
        let moved = x1.values()[big] - g.values()[big];
        assert!((moved.abs() - 0.01).abs() < 1e-3 && moved.signum() == d1[big].signum());
    }

    #[test]
    fn moments_of_another_length_are_refused() {
        let g = model();
        let other = Params::init(&ModelSpec::default_mlp(4, 2), 1).unwrap();
        let moments = Moments {
            first: other.clone(),
            second: other,
        };
        let opt = ServerOptimizer::FedAdam {
            learning_rate: 0.01,
            beta1: 0.9,
            beta2: 0.99,
            tau: 1e-3,
        };
        let delta = vec![0.0; g.len()];
        assert!(opt.step(&g, &delta, Some(&moments)).is_err());
    }

    #[test]
    fn bad_values_name_their_key() {
        let opt: ServerOptimizer = toml::from_str("kind = \"fedadam\"\nbeta2 = 1.0").unwrap();
        assert_eq!(opt.invalid().unwrap().0, "server_optimizer.beta2");
        let err = toml::from_str::<ServerOptimizer>("kind = \"sgd\"").unwrap_err();
        assert!(err.to_string().contains("sgd"), "{err}");
        assert_eq!(
            toml::from_str::<ServerOptimizer>("kind = \"fedavg\"").unwrap(),
            ServerOptimizer::default()
        );
    }
}
