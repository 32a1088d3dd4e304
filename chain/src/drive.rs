//! Scripted rounds on a devnet: every member commits and reveals a beacon share (unless the
//! script makes it absent or a withholder), the roles are
//! drawn, the aggregator anchors, voters commit and reveal the votes the script says, the round
//! is finalised, with the clock advanced past each window and the gas of every call recorded.
//! For tests, the gas example and demos; a real deployment drives each step from its own
//! process.

use std::collections::BTreeMap;
use std::time::Duration;

use alloy::primitives::{Address, B256};

use crate::devnet::{Devnet, DevnetError};
use crate::merkle::sorted_contributors;
use crate::roles::{Outcome, Role};
use crate::task::{Ballot, TaskClient, random_b256};

/// What the members do in a scripted round.
#[derive(Debug, Clone, Default)]
pub struct RoundScript {
    /// The candidate's hash (random if `None`).
    pub model_hash: Option<B256>,
    /// The aggregator's accuracy figure.
    pub accuracy_bps: u32,
    /// Voters that vote to reject (everyone else accepts).
    pub rejecters: Vec<Address>,
    /// Voters that commit no vote.
    pub silent_voters: Vec<Address>,
    /// Members that commit no beacon share (absent: neither slashed nor paid).
    pub beacon_skippers: Vec<Address>,
    /// Members that commit a beacon share and never reveal it (slashed).
    pub beacon_withholders: Vec<Address>,
    /// The contributors anchored (all proposers if `None`).
    pub contributors: Option<Vec<Address>>,
}

/// What happened in a scripted round.
#[derive(Debug, Clone)]
pub struct RoundReport {
    /// The round number.
    pub round: u64,
    /// Its seed.
    pub seed: B256,
    /// Members in member-index order (`participants()` at the draw).
    pub members: Vec<Address>,
    /// Proposers, in member-index order.
    pub proposers: Vec<Address>,
    /// Voters, in member-index order.
    pub voters: Vec<Address>,
    /// The candidate anchored.
    pub model_hash: B256,
    /// The outcome.
    pub outcome: Outcome,
    /// Gas used per call name (`startRound`, `commitBeacon`, ...), one entry per call.
    pub gas: BTreeMap<&'static str, Vec<u64>>,
}

/// Plays one round of `task` with `members` (clients of the task, one per member; every active
/// participant must be among them) and `aggregator` (the task's aggregator).
pub async fn play_round(
    devnet: &Devnet,
    members: &[TaskClient],
    aggregator: &TaskClient,
    script: &RoundScript,
) -> Result<RoundReport, DevnetError> {
    let first = members
        .first()
        .ok_or_else(|| DevnetError::Invalid("a round needs members".into()))?;
    let params = first.params().await?;
    let mut gas: BTreeMap<&'static str, Vec<u64>> = BTreeMap::new();
    let mut log = |name: &'static str, g: u64| gas.entry(name).or_default().push(g);

    let (round, c) = first.start_round().await?;
    log("startRound", c.gas_used);
    let on_chain = first.participants().await?;
    let playing: Vec<&TaskClient> = members
        .iter()
        .filter(|m| on_chain.contains(&m.address()))
        .collect();

    let mut secrets = Vec::new();
    for m in &playing {
        if script.beacon_skippers.contains(&m.address()) {
            continue;
        }
        let s = random_b256()?;
        log("commitBeacon", m.commit_beacon(round, s).await?.gas_used);
        secrets.push((*m, s));
    }
    devnet
        .advance_time(secs(params.beaconCommitDuration))
        .await?;
    for (m, s) in &secrets {
        if script.beacon_withholders.contains(&m.address()) {
            continue;
        }
        log("revealBeacon", m.reveal_beacon(round, *s).await?.gas_used);
    }
    devnet
        .advance_time(secs(params.beaconRevealDuration))
        .await?;
    log("drawRoles", aggregator.draw_roles(round).await?.gas_used);

    let info = first.round_info(round).await?;
    let mut proposers = Vec::new();
    let mut voters = Vec::new();
    for a in &on_chain {
        match first.role_of(round, *a).await? {
            Role::Proposer => proposers.push(*a),
            Role::Voter => voters.push(*a),
            Role::None => {}
        }
    }

    let model_hash = match script.model_hash {
        Some(h) => h,
        None => random_b256()?,
    };
    let (prev, _) = first.last_accepted().await?;
    let contributors = sorted_contributors(script.contributors.as_deref().unwrap_or(&proposers));
    let c = aggregator
        .anchor_candidate(round, model_hash, prev, script.accuracy_bps, &contributors)
        .await?;
    log("anchorCandidate", c.gas_used);

    let mut ballots = Vec::new();
    for m in &playing {
        let a = m.address();
        if !voters.contains(&a) || script.silent_voters.contains(&a) {
            continue;
        }
        let ballot = Ballot {
            accept: !script.rejecters.contains(&a),
            accuracy_bps: script.accuracy_bps,
            salt: random_b256()?,
        };
        log("commitVote", m.commit_vote(round, &ballot).await?.gas_used);
        ballots.push((*m, ballot));
    }
    devnet.advance_time(secs(params.voteCommitDuration)).await?;
    for (m, b) in &ballots {
        log("revealVote", m.reveal_vote(round, b).await?.gas_used);
    }
    devnet.advance_time(secs(params.voteRevealDuration)).await?;
    log("finalise", first.finalise(round).await?.gas_used);
    let (outcome, _) = first.outcome_of(round).await?;

    Ok(RoundReport {
        round,
        seed: info.seed,
        members: on_chain,
        proposers,
        voters,
        model_hash,
        outcome,
        gas,
    })
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}
