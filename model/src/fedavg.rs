//! Federated averaging: the sample-weighted mean of client updates and the new global model.
//!
//! FedAvg (McMahan et al., 2017): `w' = w + η · Σ_k n_k Δ_k / Σ_k n_k`, with `Δ_k` client k's
//! update (`w_k − w`), `n_k` its number of training samples and `η` the server learning rate
//! (1 for plain FedAvg). Sums run in f64 so that the result does not depend on client order
//! beyond f64 rounding. This is the sum in the clear (simulations, `train-local`'s in-process
//! federation); under SecAgg+ the aggregator receives the sum of weighted vectors instead and
//! decodes it with [`crate::contribution::decode`].

use crate::{ModelError, Params};

/// One client's contribution to a round.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientUpdate {
    /// `w_local − w_global`, in layout order.
    pub delta: Vec<f32>,
    /// Number of training samples behind it (its weight).
    pub samples: u64,
}

/// `Σ n_k Δ_k / Σ n_k`. Fails on no updates, a zero total weight, or updates of different
/// lengths.
pub fn weighted_mean(updates: &[ClientUpdate]) -> Result<Vec<f32>, ModelError> {
    let first = updates
        .first()
        .ok_or_else(|| ModelError::Aggregate("no updates".into()))?;
    let d = first.delta.len();
    let mut sum = vec![0f64; d];
    let mut total: u64 = 0;
    for (i, u) in updates.iter().enumerate() {
        if u.delta.len() != d {
            return Err(ModelError::Aggregate(format!(
                "update {i} has {} values, update 0 has {d}",
                u.delta.len()
            )));
        }
        total = total
            .checked_add(u.samples)
            .ok_or_else(|| ModelError::Aggregate("sample counts overflow".into()))?;
        let w = u.samples as f64;
        for (s, &x) in sum.iter_mut().zip(&u.delta) {
            *s += w * f64::from(x);
        }
    }
    if total == 0 {
        return Err(ModelError::Aggregate(
            "every update has 0 samples: nothing to weight by".into(),
        ));
    }
    let total = total as f64;
    Ok(sum.into_iter().map(|s| (s / total) as f32).collect())
}

/// One FedAvg step in the clear: `global + weighted_mean(updates)` (`η = 1`).
pub fn fedavg(global: &Params, updates: &[ClientUpdate]) -> Result<Params, ModelError> {
    global.with_update(&weighted_mean(updates)?, 1.0)
}
