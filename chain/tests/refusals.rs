//! What the task refuses, decoded into readable errors: a stake below the minimum, an anchor
//! from someone other than the aggregator, future, past and duplicate rounds, a vote reveal
//! that does not match its commitment; and the identical re-anchor that is a no-op.

mod common;

use std::time::{Duration, Instant};

use alloy::primitives::{B256, U256};
use alloy::providers::Provider;
use flock_chain::ChainError;
use flock_chain::contracts::FlTask;
use flock_chain::devnet::dev_identity;
use flock_chain::params::FLOCK;
use flock_chain::task::Ballot;

fn refused(r: Result<impl std::fmt::Debug, ChainError>) -> anyhow::Result<String> {
    match r {
        Err(ChainError::Reverted(rev)) => Ok(rev.message().to_owned()),
        other => anyhow::bail!("expected a revert, got {other:?}"),
    }
}

#[tokio::test]
async fn the_task_refuses_what_it_must() -> anyhow::Result<()> {
    let t0 = Instant::now();
    let s = common::setup(4, 0, |_| 10, |_| {}).await?;
    let m0 = &s.members[0];

    // Stake below the minimum (10 FLOCK).
    let late = s.devnet.task_client(s.task, 0).await?;
    s.devnet
        .mint(late.address(), FLOCK * U256::from(100u8))
        .await?;
    let msg = refused(late.join(FLOCK * U256::from(5u8), dev_identity(0)).await)?;
    assert_eq!(
        msg,
        format!(
            "StakeBelowMinimum({}, {})",
            FLOCK * U256::from(5u8),
            FLOCK * U256::from(10u8)
        )
    );

    let (round, proposers) = common::to_training(&s.devnet, &s.members, &s.aggregator).await?;
    assert_eq!(round, 1);
    let prev = s.params.initial_model_hash;
    let model = B256::repeat_byte(0x11);

    // Only the aggregator anchors; typed and readable.
    let err = m0
        .anchor_candidate(round, model, prev, 9000, &proposers)
        .await
        .err();
    let err = err.ok_or_else(|| anyhow::anyhow!("a member anchored"))?;
    assert_eq!(err.revert_name(), Some("NotAggregator"));
    assert!(matches!(
        err.task_error(),
        Some(FlTask::FlTaskErrors::NotAggregator(_))
    ));
    // Future round, unsorted contributors, wrong previous model.
    assert_eq!(
        refused(
            s.aggregator
                .anchor_candidate(2, model, prev, 9000, &proposers)
                .await
        )?,
        "WrongRound(2, 1)"
    );
    if proposers.len() > 1 {
        let mut rev = proposers.clone();
        rev.reverse();
        assert_eq!(
            refused(
                s.aggregator
                    .anchor_candidate(round, model, prev, 9000, &rev)
                    .await
            )?,
            "BadContributors"
        );
    }
    let wrong_prev = refused(
        s.aggregator
            .anchor_candidate(round, model, B256::repeat_byte(9), 9000, &proposers)
            .await,
    )?;
    assert!(
        wrong_prev.starts_with("PrevModelMismatch(0x0909"),
        "{wrong_prev}"
    );

    // The anchor, then the identical one again: a no-op without an event.
    s.aggregator
        .anchor_candidate(round, model, prev, 9000, &proposers)
        .await?;
    let again = s
        .aggregator
        .anchor_candidate(round, model, prev, 9000, &proposers)
        .await?;
    let receipt = s
        .devnet
        .provider()
        .get_transaction_receipt(again.hash)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no receipt"))?;
    assert!(
        receipt.logs().is_empty(),
        "identical re-anchor emitted an event"
    );
    // A different anchor for the anchored round.
    assert_eq!(
        refused(
            s.aggregator
                .anchor_candidate(round, B256::repeat_byte(0x22), prev, 9000, &proposers)
                .await
        )?,
        "AlreadyAnchored(1)"
    );
    // Too early to reveal a vote; a beacon commit in the wrong phase.
    assert_eq!(
        refused(m0.commit_beacon(round, B256::repeat_byte(3)).await)?,
        "WrongPhase(VoteCommit)"
    );

    // Votes: a reveal that does not match its commitment is refused, the right one accepted.
    let voters: Vec<_> = s
        .members
        .iter()
        .filter(|m| !proposers.contains(&m.address()))
        .collect();
    let voter = voters.first().ok_or_else(|| anyhow::anyhow!("no voter"))?;
    let ballot = Ballot {
        accept: true,
        accuracy_bps: 9100,
        salt: s.devnet.random()?,
    };
    voter.commit_vote(round, &ballot).await?;
    s.devnet
        .advance_time(Duration::from_secs(s.params.vote_commit_duration.into()))
        .await?;
    let lie = Ballot {
        accept: false,
        ..ballot
    };
    assert_eq!(refused(voter.reveal_vote(round, &lie).await)?, "BadReveal");
    let wrong_salt = Ballot {
        salt: B256::repeat_byte(5),
        ..ballot
    };
    assert_eq!(
        refused(voter.reveal_vote(round, &wrong_salt).await)?,
        "BadReveal"
    );
    voter.reveal_vote(round, &ballot).await?;
    s.devnet
        .advance_time(Duration::from_secs(s.params.vote_reveal_duration.into()))
        .await?;
    s.aggregator.finalise(round).await?;

    // After finalisation: the identical anchor is still a no-op, a different one refused, and
    // out-of-order rounds refused.
    s.aggregator
        .anchor_candidate(round, model, prev, 9000, &proposers)
        .await?;
    assert_eq!(
        refused(
            s.aggregator
                .anchor_candidate(round, B256::repeat_byte(0x33), model, 9000, &proposers)
                .await
        )?,
        "AlreadyAnchored(1)"
    );
    assert_eq!(
        refused(
            s.aggregator
                .anchor_candidate(2, B256::repeat_byte(0x33), model, 9000, &proposers)
                .await
        )?,
        "WrongRound(2, 1)"
    );
    assert_eq!(refused(s.aggregator.finalise(1).await)?, "WrongPhase(Idle)");
    assert_eq!(
        refused(m0.commit_beacon(2, B256::repeat_byte(3)).await)?,
        "WrongRound(2, 1)"
    );
    // A past round that was never anchored: round 2 runs void, then is anchored late.
    let (r2, p2) = common::to_training(&s.devnet, &s.members, &s.aggregator).await?;
    s.devnet
        .advance_time(Duration::from_secs(s.params.training_duration.into()))
        .await?;
    assert_eq!(
        refused(
            s.aggregator
                .anchor_candidate(r2, B256::repeat_byte(0x44), model, 9000, &p2)
                .await
        )?,
        "WrongPhase(Finalisable)"
    );
    s.aggregator.finalise(r2).await?;
    let (r3, p3) = common::to_training(&s.devnet, &s.members, &s.aggregator).await?;
    assert_eq!(r3, 3);
    assert_eq!(
        refused(
            s.aggregator
                .anchor_candidate(r2, B256::repeat_byte(0x44), model, 9000, &p3)
                .await
        )?,
        "WrongRound(2, 3)"
    );
    assert_eq!(s.aggregator.last_accepted().await?, (model, 1));
    eprintln!("the_task_refuses_what_it_must: {:?}", t0.elapsed());
    Ok(())
}
