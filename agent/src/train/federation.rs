//! FedAvg over simulated clients in one process, no network: the reference the networked,
//! secure path must reproduce.
//!
//! Each round every client trains from the global model on its own data
//! ([`train_local`]), the updates are averaged by sample count in the clear
//! ([`flock_model::fedavg`]), and the new global model is evaluated on every client's own test
//! set (pooled). Under SecAgg+ only the sum changes hands; it is replaced bit for bit.

use std::time::{Duration, Instant};

use flock_model::Params;
use flock_model::fedavg::{ClientUpdate, fedavg};
use flock_model::metrics::{Evaluation, pool};

use super::{TrainConfig, TrainDevice, TrainError, evaluate, train_local};
use crate::data::{DataError, Dataset, FeatureMoments};

/// One simulated client: its training data and its private test data, both standardised.
#[derive(Clone, Debug)]
pub struct SimClient {
    /// What it trains on.
    pub train: Dataset,
    /// What it evaluates the global model on.
    pub test: Dataset,
}

impl SimClient {
    /// Makes clients from raw (train, test) pairs, all standardised alike with the moments of
    /// every client's training data summed (see [`crate::data::Standardizer`] for why a
    /// federation cannot let each client scale on its own).
    pub fn with_shared_scaling(
        parts: Vec<(Dataset, Dataset)>,
    ) -> Result<Vec<SimClient>, DataError> {
        let mut moments: Option<FeatureMoments> = None;
        for (train, _) in &parts {
            let m = FeatureMoments::of(train);
            match &mut moments {
                Some(total) => total.merge(&m)?,
                None => moments = Some(m),
            }
        }
        let Some(moments) = moments else {
            return Ok(Vec::new());
        };
        let scaler = moments.standardizer();
        parts
            .into_iter()
            .map(|(mut train, mut test)| {
                scaler.apply(&mut train)?;
                scaler.apply(&mut test)?;
                Ok(SimClient { train, test })
            })
            .collect()
    }
}

/// What one round did.
#[derive(Clone, Debug)]
pub struct RoundReport {
    /// 1-based round number.
    pub round: usize,
    /// Rounds in this run.
    pub rounds: usize,
    /// The new global model on the clients' test sets, pooled.
    pub evaluation: Evaluation,
    /// Wall time of the round (training and evaluation).
    pub elapsed: Duration,
}

/// Runs `rounds` rounds of FedAvg from `initial`; client `k` in round `r` trains with seed
/// `config.seed + 1000·r + k`. Returns the final global model and a report per round.
pub fn simulate_fedavg(
    device: &TrainDevice,
    initial: &Params,
    clients: &[SimClient],
    rounds: usize,
    config: &TrainConfig,
    on_round: &mut dyn FnMut(&RoundReport),
) -> Result<(Params, Vec<RoundReport>), TrainError> {
    if clients.is_empty() {
        return Err(TrainError::Config("no clients to federate".into()));
    }
    let mut global = initial.clone();
    let mut reports = Vec::with_capacity(rounds);
    for round in 1..=rounds {
        let start = Instant::now();
        let mut updates = Vec::with_capacity(clients.len());
        for (k, client) in clients.iter().enumerate() {
            let seed = config
                .seed
                .wrapping_add(1000 * round as u64)
                .wrapping_add(k as u64);
            let cfg = TrainConfig {
                seed,
                ..config.clone()
            };
            let update = train_local(device, &global, &client.train, &cfg, &mut |_| {})?;
            updates.push(ClientUpdate {
                delta: update.delta,
                samples: update.samples,
            });
        }
        global = fedavg(&global, &updates)?;
        let evaluations = clients
            .iter()
            .map(|c| evaluate(device, &global, &c.test))
            .collect::<Result<Vec<_>, _>>()?;
        let evaluation = pool(&evaluations)
            .ok_or_else(|| TrainError::Config("clients' test sets disagree on classes".into()))?;
        let report = RoundReport {
            round,
            rounds,
            evaluation,
            elapsed: start.elapsed(),
        };
        on_round(&report);
        reports.push(report);
    }
    Ok((global, reports))
}
