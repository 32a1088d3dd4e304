//! What a task tells its agents beyond the architecture: how to train locally and how to scale
//! the features. The aggregator sends a [`TaskInfo`] to every agent that joins.

use serde::{Deserialize, Serialize};

use crate::{ModelError, ModelSpec};

/// A task as its agents need to know it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskInfo {
    /// Human name of the task.
    pub name: String,
    /// The model architecture.
    pub spec: ModelSpec,
    /// Number of classes of the labels (the model's outputs).
    pub classes: usize,
    /// Local training settings.
    pub training: TrainConfig,
    /// Feature scaling every agent applies, the same everywhere; `None`: each agent scales
    /// with its own training statistics (fine for IID data, harmful for non-IID: see the
    /// agent's `data::Standardizer`).
    pub normalisation: Option<Normalisation>,
}

/// Per-feature `(x − mean) / std` agreed for a task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalisation {
    /// Per-feature mean.
    pub mean: Vec<f32>,
    /// Per-feature standard deviation (non-zero).
    pub std: Vec<f32>,
}

/// The local optimiser.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum OptimizerKind {
    /// Stochastic gradient descent with (heavy-ball) momentum; 0 is plain SGD.
    Sgd {
        /// Momentum coefficient in `[0, 1)`.
        momentum: f64,
    },
    /// Adam with burn's defaults (β = 0.9, 0.999; ε = 1e-5).
    Adam,
}

/// How to train locally.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Passes over the local data per round.
    pub epochs: usize,
    /// Samples per gradient step.
    pub batch_size: usize,
    /// Step size.
    pub learning_rate: f64,
    /// Which optimiser. Its state starts afresh every round.
    pub optimizer: OptimizerKind,
    /// FedProx μ (Li et al., 2020): adds `μ/2 · ‖w − w_global‖²` to the loss; 0 is plain
    /// FedAvg local training.
    pub prox_mu: f64,
    /// Seed of the batch order.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 5,
            batch_size: 32,
            learning_rate: 0.01,
            optimizer: OptimizerKind::Adam,
            prox_mu: 0.0,
            seed: 0,
        }
    }
}

impl TrainConfig {
    /// Refuses settings that cannot train, naming the field.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |msg: String| Err(ModelError::Training(msg));
        if self.batch_size == 0 {
            return bad("batch_size is 0".into());
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(format!(
                "learning_rate {} is not a positive number",
                self.learning_rate
            ));
        }
        if !(self.prox_mu.is_finite() && self.prox_mu >= 0.0) {
            return bad(format!("prox_mu {} is not a number ≥ 0", self.prox_mu));
        }
        if let OptimizerKind::Sgd { momentum } = self.optimizer
            && !(0.0..1.0).contains(&momentum)
        {
            return bad(format!("momentum {momentum} is not in [0, 1)"));
        }
        Ok(())
    }
}
