//! The run's report, built once the task is over from what the chain and the aggregator's
//! model store say (nothing is taken from the processes' word): per round the roles
//! (`roleOf`), the candidate (`candidateOf`: hash, contributors), the outcome, each voter's
//! revealed accuracy (`seatOf`), the anchoring and finalising transactions (`CandidateAnchored`
//! and `RoundFinalised` logs), the phases' durations (`roundInfo` timestamps and the
//! finalising block's), the global model after the round (`RoundFinalised`'s last accepted
//! hash) scored on the pooled held-out set; per agent its stake after each round (`stakeOf` at
//! the finalising block), rewards and penalties (`Rewarded`, `Slashed`) and roles.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::utils::format_units;
use alloy::primitives::{Address, B256, TxHash, U256};
use alloy::providers::Provider;
use alloy::rpc::types::{Filter, Log};
use alloy::sol_types::SolEvent;
use anyhow::Context;
use flock_agent::data::Dataset;
use flock_agent::train::{TrainDevice, evaluate};
use flock_aggregator::store::ModelStore;
use flock_chain::contracts::FlTask;
use flock_chain::task::TaskClient;
use flock_chain::{Outcome, Role};
use flock_model::{ModelId, Params};

use crate::progress::outcome_name;
use flock_demo::report::{AgentRecord, PhaseSeconds, RoundRecord, RunReport};

/// What the report is built from.
pub(crate) struct Sources<'a> {
    /// The task, read-only.
    pub(crate) chain: &'a TaskClient,
    /// Agent i's account.
    pub(crate) accounts: &'a [Address],
    /// Agent i's name.
    pub(crate) names: &'a [String],
    /// The aggregator's model store.
    pub(crate) store: &'a ModelStore,
    /// The task's name (the store's state belongs to it).
    pub(crate) task_name: &'a str,
    /// The task's initial model (the global model until a round is accepted).
    pub(crate) initial: &'a Params,
    /// The pooled held-out set every accuracy is measured on.
    pub(crate) test: &'a Dataset,
    /// The agents the demo killed, by round.
    pub(crate) dropped: &'a BTreeMap<u64, BTreeSet<usize>>,
    /// What each agent staked at the start, in FLOCK.
    pub(crate) stake_start: f64,
}

/// The parts of the report that are the run's settings and the baseline's results.
pub(crate) struct Settings {
    /// Data set name.
    pub(crate) dataset: String,
    /// Rounds planned.
    pub(crate) rounds: u64,
    /// Dirichlet α.
    pub(crate) alpha: f64,
    /// Training backend.
    pub(crate) backend: String,
    /// Accuracy threshold.
    pub(crate) threshold: f64,
    /// The centralised baseline's accuracy per round.
    pub(crate) centralised: Vec<f64>,
    /// When the run started.
    pub(crate) started: Instant,
}

/// What the task's logs say, by round and by account.
#[derive(Default)]
struct Events {
    anchored: BTreeMap<u64, TxHash>,
    finalised: BTreeMap<u64, Finalised>,
    earned: HashMap<Address, U256>,
    slashed: HashMap<Address, U256>,
}

/// A `RoundFinalised` log.
struct Finalised {
    tx: Option<TxHash>,
    block: u64,
    timestamp: u64,
    /// The last accepted model after the round.
    global: B256,
}

/// Builds the report.
pub(crate) async fn build(src: &Sources<'_>, settings: Settings) -> anyhow::Result<RunReport> {
    let chain = src.chain;
    let events = read_events(chain).await?;
    let mut scorer = Scorer::new(src);
    let current = chain.current_round().await?;
    let mut rounds = Vec::new();
    let mut agents: Vec<AgentRecord> = src
        .accounts
        .iter()
        .zip(src.names)
        .enumerate()
        .map(|(i, (a, name))| AgentRecord {
            name: name.clone(),
            address: a.to_string(),
            stake_start: src.stake_start,
            stake_end: src.stake_start,
            earned: flock(events.earned.get(a).copied().unwrap_or_default()),
            slashed: flock(events.slashed.get(a).copied().unwrap_or_default()),
            stake_per_round: Vec::new(),
            proposer_rounds: 0,
            voter_rounds: 0,
            dropped: src.dropped.values().any(|d| d.contains(&i)),
        })
        .collect();
    let (_, initial) = flock_model::file::encode(src.initial)?;
    let mut global = B256::from(initial.0);
    for r in 1..=current {
        let record = round_record(src, &events, &mut scorer, r, &mut global).await?;
        for (i, a) in src.accounts.iter().enumerate() {
            let agent = &mut agents[i];
            agent.proposer_rounds += u64::from(record.proposers.contains(&agent.name));
            agent.voter_rounds += u64::from(record.voters.contains(&agent.name));
            let stake = match events.finalised.get(&r) {
                Some(f) => chain.stake_of_at(*a, f.block).await?,
                None => chain.stake_of(*a).await?,
            };
            agent.stake_per_round.push(flock(stake));
        }
        rounds.push(record);
    }
    for (agent, a) in agents.iter_mut().zip(src.accounts) {
        agent.stake_end = flock(chain.stake_of(*a).await?);
    }
    let (chain_final, _) = chain.last_accepted().await?;
    let state = src.store.state(src.task_name)?;
    let final_model = state
        .as_ref()
        .map_or(chain_final, |s| B256::from(s.model.0));
    let final_accuracy = scorer.accuracy(final_model)?;
    Ok(RunReport {
        dataset: settings.dataset,
        agents: src.accounts.len(),
        rounds_planned: settings.rounds,
        alpha: settings.alpha,
        backend: settings.backend,
        task_address: chain.task_address().to_string(),
        rounds,
        agents_summary: agents,
        final_centralised_accuracy: settings.centralised.last().copied().unwrap_or(f64::NAN),
        centralised_accuracy: settings.centralised,
        final_accuracy,
        accuracy_threshold: settings.threshold,
        final_model_hash: state.map_or_else(String::new, |s| B256::from(s.model.0).to_string()),
        chain_final_model_hash: chain_final.to_string(),
        seconds_total: settings.started.elapsed().as_secs_f64(),
    })
}

/// Round `r`; `global` is the last accepted model before it, and after it on return.
async fn round_record(
    src: &Sources<'_>,
    events: &Events,
    scorer: &mut Scorer<'_>,
    r: u64,
    global: &mut B256,
) -> anyhow::Result<RoundRecord> {
    let chain = src.chain;
    let view = chain.round_info(r).await?;
    let (outcome, _) = chain.outcome_of(r).await?;
    let candidate = chain.candidate_of(r).await?;
    let (mut proposers, mut voters) = (Vec::new(), Vec::new());
    let mut voter_accuracy = BTreeMap::new();
    for (a, name) in src.accounts.iter().zip(src.names) {
        match chain.role_of(r, *a).await? {
            Role::Proposer => proposers.push(name.clone()),
            Role::Voter => {
                voters.push(name.clone());
                let seat = chain
                    .seat_of(r, *a)
                    .await
                    .with_context(|| format!("seatOf({r}, {a})"))?;
                if seat.vote_revealed {
                    voter_accuracy.insert(name.clone(), f64::from(seat.accuracy_bps) / 10_000.0);
                }
            }
            Role::None => {}
        }
    }
    let finalised = events.finalised.get(&r);
    if let Some(f) = finalised {
        *global = f.global;
    }
    let anchored = view.anchoredAt != 0;
    let training_end = if anchored {
        view.anchoredAt
    } else {
        view.anchorDeadline
    };
    let voting_end = if anchored {
        view.voteRevealEnd
    } else {
        training_end
    };
    let phases = PhaseSeconds {
        beacon: seconds(view.startedAt, view.rolesDrawnAt),
        training: seconds(view.rolesDrawnAt, training_end),
        voting: seconds(training_end, voting_end),
        finalise: finalised.map_or(0.0, |f| seconds(voting_end, f.timestamp)),
    };
    let dropped = src
        .dropped
        .get(&r)
        .map(|d| {
            d.iter()
                .filter_map(|&i| src.names.get(i).cloned())
                .collect()
        })
        .unwrap_or_default();
    Ok(RoundRecord {
        round: r,
        proposers,
        voters,
        dropped,
        contributors: usize::from(candidate.contributor_count),
        voter_accuracy,
        outcome: outcome_name(outcome).to_owned(),
        accepted: outcome == Outcome::Accepted,
        model_hash: if candidate.anchored {
            candidate.model_hash.to_string()
        } else {
            String::new()
        },
        global_model_hash: global.to_string(),
        anchor_tx: events.anchored.get(&r).map(ToString::to_string),
        finalise_tx: finalised.and_then(|f| f.tx).map(|t| t.to_string()),
        accuracy: scorer.accuracy(*global)?,
        phases,
    })
}

/// Reads every log of the task once.
async fn read_events(chain: &TaskClient) -> anyhow::Result<Events> {
    let filter = Filter::new().address(chain.task_address()).from_block(0);
    let logs = chain
        .provider()
        .get_logs(&filter)
        .await
        .context("reading the task's logs")?;
    let mut events = Events::default();
    for log in &logs {
        let Some(topic) = log.topic0() else { continue };
        if *topic == FlTask::CandidateAnchored::SIGNATURE_HASH {
            let ev = log.log_decode::<FlTask::CandidateAnchored>()?;
            if let (Ok(round), Some(tx)) = (u64::try_from(ev.inner.round), log.transaction_hash) {
                events.anchored.insert(round, tx);
            }
        } else if *topic == FlTask::RoundFinalised::SIGNATURE_HASH {
            let ev = log.log_decode::<FlTask::RoundFinalised>()?;
            let round = u64::try_from(ev.inner.round).context("round number")?;
            let (block, timestamp) = block_of(chain, log).await?;
            events.finalised.insert(
                round,
                Finalised {
                    tx: log.transaction_hash,
                    block,
                    timestamp,
                    global: ev.inner.modelHash,
                },
            );
        } else if *topic == FlTask::Rewarded::SIGNATURE_HASH {
            let ev = log.log_decode::<FlTask::Rewarded>()?;
            *events.earned.entry(ev.inner.participant).or_default() += ev.inner.amount;
        } else if *topic == FlTask::Slashed::SIGNATURE_HASH {
            let ev = log.log_decode::<FlTask::Slashed>()?;
            *events.slashed.entry(ev.inner.participant).or_default() += ev.inner.amount;
        }
    }
    Ok(events)
}

/// The block number and timestamp of `log`.
async fn block_of(chain: &TaskClient, log: &Log) -> anyhow::Result<(u64, u64)> {
    let block = log.block_number.context("a log without a block number")?;
    if let Some(t) = log.block_timestamp {
        return Ok((block, t));
    }
    let header = chain
        .provider()
        .get_block_by_number(BlockNumberOrTag::Number(block))
        .await?
        .with_context(|| format!("block {block} is missing"))?;
    Ok((block, header.header.timestamp))
}

/// Scores models on the pooled held-out set, each model once.
struct Scorer<'a> {
    src: &'a Sources<'a>,
    device: TrainDevice,
    scores: HashMap<B256, f64>,
}

impl<'a> Scorer<'a> {
    fn new(src: &'a Sources<'a>) -> Self {
        Self {
            src,
            device: TrainDevice::cpu(),
            scores: HashMap::new(),
        }
    }

    /// The accuracy of the model with this hash (the initial model, or one in the store).
    fn accuracy(&mut self, hash: B256) -> anyhow::Result<f64> {
        if let Some(a) = self.scores.get(&hash) {
            return Ok(*a);
        }
        let id = ModelId(hash.0);
        let (_, initial) = flock_model::file::encode(self.src.initial)?;
        let model = if id == initial {
            self.src.initial.clone()
        } else {
            self.src
                .store
                .get(&id)
                .with_context(|| format!("model {hash} from the aggregator's store"))?
        };
        let accuracy = evaluate(&self.device, &model, self.src.test)?.accuracy;
        self.scores.insert(hash, accuracy);
        Ok(accuracy)
    }
}

/// Seconds from `from` to `to` (unix times), 0 if either is unset or they are out of order.
fn seconds(from: u64, to: u64) -> f64 {
    if from == 0 || to == 0 {
        return 0.0;
    }
    to.saturating_sub(from) as f64
}

/// Token wei as FLOCK.
fn flock(amount: U256) -> f64 {
    format_units(amount, 18)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN)
}
