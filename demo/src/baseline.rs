//! The centralised baseline: what training on all the agents' data in one place would have
//! reached. The agents' training splits pooled, scaled with the task's scaling, trained from
//! the task's initial model with the task's `TrainConfig` (`flock_agent::train::train_local`),
//! one call per round with the seed an agent uses in that round, the update applied in full,
//! and the model scored after each round on the pooled held-out set. It runs on a thread of
//! its own while the federation runs, on burn's CPU backend whatever the agents use: CPU
//! training is deterministic, and the demo process then never opens a GPU (whose drivers may
//! write to the terminal).

use std::thread::JoinHandle;

use anyhow::Context;
use flock_agent::data::Dataset;
use flock_agent::train::{TrainConfig, TrainDevice, evaluate, train_local};
use flock_model::Params;

/// What the baseline trains on and how.
pub(crate) struct BaselineInput {
    /// The pooled training splits, scaled.
    pub(crate) train: Dataset,
    /// The pooled held-out splits, scaled.
    pub(crate) test: Dataset,
    /// The task's initial model.
    pub(crate) initial: Params,
    /// The task's local training settings.
    pub(crate) training: TrainConfig,
    /// Rounds to train.
    pub(crate) rounds: u64,
}

/// Starts the baseline on its own thread; it returns the accuracy after each round.
pub(crate) fn spawn(input: BaselineInput) -> JoinHandle<anyhow::Result<Vec<f64>>> {
    std::thread::spawn(move || run(&input))
}

/// Trains and scores, round by round.
fn run(input: &BaselineInput) -> anyhow::Result<Vec<f64>> {
    let device = TrainDevice::cpu();
    let mut model = input.initial.clone();
    let mut accuracy = Vec::new();
    for round in 1..=input.rounds {
        // The seed an agent trains round `round` with (`start_round` in its session).
        let config = TrainConfig {
            seed: input.training.seed.wrapping_add(round),
            ..input.training.clone()
        };
        let update = train_local(&device, &model, &input.train, &config, &mut |_| {})
            .with_context(|| format!("baseline round {round}"))?;
        model = model.with_update(&update.delta, 1.0)?;
        accuracy.push(evaluate(&device, &model, &input.test)?.accuracy);
    }
    Ok(accuracy)
}
