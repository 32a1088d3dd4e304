//! Device identities on chain: `join` registers the participant's ed25519 key (in the `Joined`
//! event too); a zero key and a key held by another participant are refused; leaving releases
//! the key for anyone; a round's roster maps every member's address to its key, `ClientId`,
//! role and stake, consistent with the roles on chain and the pure role draw.

mod common;

use std::time::{Duration, Instant};

use alloy::primitives::{B256, U256};
use alloy::providers::Provider;
use flock_chain::ChainError;
use flock_chain::contracts::FlTask;
use flock_chain::devnet::dev_identity;
use flock_chain::identity::client_id;
use flock_chain::params::FLOCK;
use flock_chain::roles::{Role, proposer_count, proposer_indices};

fn refused(r: Result<impl std::fmt::Debug, ChainError>) -> anyhow::Result<String> {
    match r {
        Err(ChainError::Reverted(rev)) => Ok(rev.message().to_owned()),
        other => anyhow::bail!("expected a revert, got {other:?}"),
    }
}

#[tokio::test]
async fn join_registers_a_unique_identity_released_on_leave() -> anyhow::Result<()> {
    let t0 = Instant::now();
    let s = common::setup(2, 0, |_| 10, |_| {}).await?;
    let (a, b) = (&s.members[0], &s.members[1]);
    let key_a = dev_identity(common::FIRST_MEMBER);
    let key_b = dev_identity(common::FIRST_MEMBER + 1);
    assert_eq!(a.identity_of(a.address()).await?, key_a);
    assert_eq!(a.participant_of_identity(key_a).await?, Some(a.address()));
    assert_eq!(a.participant_of_identity(key_b).await?, Some(b.address()));
    assert_eq!(a.participant_of_identity(B256::repeat_byte(7)).await?, None);

    // A newcomer (account 0): zero key, then someone else's key, refused; its own accepted,
    // and announced in `Joined`.
    let c = s.devnet.task_client(s.task, 0).await?;
    s.devnet
        .mint(c.address(), FLOCK * U256::from(100u8))
        .await?;
    let stake = FLOCK * U256::from(10u8);
    assert_eq!(refused(c.join(stake, B256::ZERO).await)?, "ZeroIdentity");
    let err = c.join(stake, key_a).await.err();
    let err = err.ok_or_else(|| anyhow::anyhow!("a taken key was accepted"))?;
    assert_eq!(err.revert_name(), Some("IdentityTaken"), "{err}");
    assert_eq!(
        err.revert().map(|r| r.message().to_owned()),
        Some(format!("IdentityTaken({})", a.address()))
    );
    match err.task_error() {
        Some(FlTask::FlTaskErrors::IdentityTaken(e)) => assert_eq!(e.holder, a.address()),
        other => anyhow::bail!("expected IdentityTaken, got {other:?}"),
    }
    let key_c = dev_identity(0);
    let joined = c.join(stake, key_c).await?;
    let receipt = s
        .devnet
        .provider()
        .get_transaction_receipt(joined.join.hash)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no receipt"))?;
    let ev = receipt
        .logs()
        .iter()
        .find_map(|l| l.log_decode::<FlTask::Joined>().ok())
        .ok_or_else(|| anyhow::anyhow!("no Joined event"))?;
    assert_eq!(ev.inner.participant, c.address());
    assert_eq!(ev.inner.identityKey, key_c);
    assert_eq!(ev.inner.stake, stake);
    assert_eq!(ev.inner.eligibleFromRound, U256::from(1u8));
    assert_eq!(c.participant_of_identity(key_c).await?, Some(c.address()));
    // Already joined: refused before the key is looked at.
    assert_eq!(
        refused(c.join(stake, B256::repeat_byte(1)).await)?,
        "AlreadyJoined"
    );

    // `a` leaves: its key is free, and another participant's key is still taken.
    a.leave().await?;
    assert_eq!(a.identity_of(a.address()).await?, B256::ZERO);
    assert_eq!(a.participant_of_identity(key_a).await?, None);
    assert_eq!(
        refused(a.join(stake, key_b).await)?,
        format!("IdentityTaken({})", b.address())
    );
    // `c` leaves and rejoins with `a`'s released key; `a` rejoins with `c`'s.
    c.leave().await?;
    c.join(stake, key_a).await?;
    assert_eq!(c.identity_of(c.address()).await?, key_a);
    assert_eq!(c.participant_of_identity(key_a).await?, Some(c.address()));
    a.join(stake, key_c).await?;
    assert_eq!(a.participant_of_identity(key_c).await?, Some(a.address()));
    assert_eq!(a.identity_of(a.address()).await?, key_c);
    eprintln!(
        "join_registers_a_unique_identity_released_on_leave: {:?}",
        t0.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn the_roster_matches_the_roles_on_chain() -> anyhow::Result<()> {
    let t0 = Instant::now();
    let n = 7;
    let s = common::setup(n, 100, |i| 10 + 3 * i as u64, |_| {}).await?;
    let no_round = s.aggregator.roster(1).await.err();
    assert!(
        matches!(no_round, Some(ChainError::Unavailable(_))),
        "{no_round:?}"
    );

    // Round 1 started: the roster lists the members with no role yet. A latecomer (account 0)
    // joins during the round: a participant, but not a member of round 1.
    let (round, _) = s.members[0].start_round().await?;
    let late = s.devnet.task_client(s.task, 0).await?;
    s.devnet
        .mint(late.address(), FLOCK * U256::from(100u8))
        .await?;
    late.join(FLOCK * U256::from(10u8), dev_identity(0)).await?;
    let early = s.aggregator.roster(round).await?;
    assert_eq!(early.members.len(), n);
    assert!(early.members.iter().all(|m| m.role == Role::None));
    assert!(early.by_address(late.address()).is_none());
    assert_eq!(s.aggregator.participants().await?.len(), n + 1);

    // Play up to the training window (the round already started: commit, reveal, draw).
    let params = s.aggregator.params().await?;
    let mut secrets = Vec::new();
    for m in &s.members {
        let secret = s.devnet.random()?;
        m.commit_beacon(round, secret).await?;
        secrets.push(secret);
    }
    s.devnet
        .advance_time(Duration::from_secs(params.beaconCommitDuration.into()))
        .await?;
    for (m, secret) in s.members.iter().zip(&secrets) {
        m.reveal_beacon(round, *secret).await?;
    }
    s.devnet
        .advance_time(Duration::from_secs(params.beaconRevealDuration.into()))
        .await?;
    s.aggregator.draw_roles(round).await?;

    let roster = s.aggregator.roster(round).await?;
    assert_eq!(roster.round, round);
    let everyone = s.aggregator.participants().await?;
    assert_eq!(roster.members.len(), n);
    for (i, m) in roster.members.iter().enumerate() {
        assert_eq!(m.index, i);
        assert_eq!(m.address, everyone[i]);
        let member = s
            .members
            .iter()
            .position(|c| c.address() == m.address)
            .ok_or_else(|| anyhow::anyhow!("{} is not a member", m.address))?;
        let key = dev_identity(common::FIRST_MEMBER + member);
        assert_eq!(m.identity, key);
        assert_eq!(m.client_id, client_id(&key.0));
        assert_eq!(m.role, s.aggregator.role_of(round, m.address).await?);
        assert_eq!(m.stake, s.aggregator.stake_of(m.address).await?);
        assert_eq!(m.stake, FLOCK * U256::from(10 + 3 * member as u64));
        assert_eq!(roster.by_identity(&key), Some(m));
        assert_eq!(roster.by_client_id(m.client_id), vec![m]);
    }
    // The proposers are the pure draw's indices of the round's seed.
    let seed = s.aggregator.round_info(round).await?.seed;
    let k = proposer_count(n, s.params.proposer_share_bps);
    let mut drawn = proposer_indices(seed, n, k);
    drawn.sort_unstable();
    let proposers: Vec<usize> = roster.proposers().map(|m| m.index).collect();
    assert_eq!(proposers, drawn);
    assert_eq!(roster.voters().count(), n - k);

    // The aggregator anchors the roster's proposers; once the round is finalised, the roster
    // is only available at a block where the round was open.
    let contributors: Vec<_> = roster.proposers().map(|m| m.address).collect();
    let contributors = flock_chain::merkle::sorted_contributors(&contributors);
    s.aggregator
        .anchor_candidate(
            round,
            B256::repeat_byte(0x5a),
            s.params.initial_model_hash,
            9000,
            &contributors,
        )
        .await?;
    s.devnet
        .advance_time(Duration::from_secs(
            u64::from(params.voteCommitDuration) + u64::from(params.voteRevealDuration),
        ))
        .await?;
    s.aggregator.finalise(round).await?;
    let after = s.aggregator.roster(round).await.err();
    assert!(
        matches!(after, Some(ChainError::Unavailable(_))),
        "{after:?}"
    );
    assert_eq!(s.aggregator.roster_at(round, roster.block).await?, roster);
    eprintln!("the_roster_matches_the_roles_on_chain: {:?}", t0.elapsed());
    Ok(())
}

#[tokio::test]
async fn a_roster_of_seventy_spans_two_batches() -> anyhow::Result<()> {
    let t0 = Instant::now();
    let n = 70;
    let s = common::setup(n, 0, |i| 10 + i as u64, |_| {}).await?;
    let (round, _) = s.members[0].start_round().await?;
    let roster = s.aggregator.roster(round).await?;
    let everyone = s.aggregator.participants().await?;
    assert_eq!(roster.members.len(), n);
    for (i, m) in roster.members.iter().enumerate() {
        assert_eq!((m.index, m.address), (i, everyone[i]));
        let member = s
            .members
            .iter()
            .position(|c| c.address() == m.address)
            .ok_or_else(|| anyhow::anyhow!("{} is not a member", m.address))?;
        assert_eq!(m.identity, dev_identity(common::FIRST_MEMBER + member));
        assert_eq!(m.stake, FLOCK * U256::from(10 + member as u64));
        assert_eq!(m.role, Role::None);
    }
    eprintln!("a_roster_of_seventy_spans_two_batches: {:?}", t0.elapsed());
    Ok(())
}
