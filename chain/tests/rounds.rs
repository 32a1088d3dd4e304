//! Whole rounds on a real anvil: token conservation with rewards and slashing, a rejected
//! candidate, strikes and removal, strikes kept across leave and rejoin (by account and by
//! identity key), members absent when anyone opened the round are not slashed, a small stake
//! is never slashed by zero, the roles on chain against the off-chain draw.

mod common;

use alloy::primitives::{B256, U256};
use flock_chain::devnet::dev_identity;
use flock_chain::drive::RoundScript;
use flock_chain::roles::{Outcome, proposer_count, proposer_indices};
use std::time::Instant;

#[tokio::test]
async fn tokens_are_conserved_over_a_task() -> anyhow::Result<()> {
    let t0 = Instant::now();
    let s = common::setup(6, 500, |i| 10 + 5 * i as u64, |p| p.total_rounds = 3).await?;
    let supply = s.devnet.total_supply().await?;
    assert_eq!(common::total_held(&s).await?, supply);
    let pool0 = s.aggregator.reward_pool().await?;

    // Round 1 accepted with one dissenting voter and a beacon withholder (both slashed);
    // round 2 rejected; round 3 accepted by all.
    let members: Vec<_> = s.members.iter().map(|m| m.address()).collect();
    let r1 = common::play(
        &s,
        &RoundScript {
            beacon_withholders: vec![members[0]],
            ..RoundScript::default()
        },
    )
    .await?;
    assert_eq!(r1.outcome, Outcome::Accepted);
    let after1 = s.aggregator.reward_pool().await?;
    let info1 = s.aggregator.round_info(1).await?;
    assert!(
        info1.slashed > U256::ZERO,
        "the beacon withholder was slashed"
    );
    assert!(info1.rewardPaid > U256::ZERO, "winners were paid");
    assert_eq!(after1, pool0 + info1.slashed - info1.rewardPaid);

    let r2 = common::play(
        &s,
        &RoundScript {
            rejecters: members.clone(),
            ..RoundScript::default()
        },
    )
    .await?;
    assert_eq!(r2.outcome, Outcome::Rejected);
    let r3 = common::play(&s, &RoundScript::default()).await?;
    assert_eq!(r3.outcome, Outcome::Accepted);

    // Conservation: every token is in a wallet or the task, and the task holds exactly the
    // stakes plus the pool.
    assert_eq!(s.devnet.total_supply().await?, supply);
    assert_eq!(common::total_held(&s).await?, supply);
    let mut stakes = U256::ZERO;
    for a in s.aggregator.participants().await? {
        stakes += s.aggregator.stake_of(a).await?;
    }
    assert_eq!(stakes, s.aggregator.total_staked().await?);
    let pool = s.aggregator.reward_pool().await?;
    assert_eq!(s.devnet.balance(s.task).await?, stakes + pool);
    let (model, round) = s.aggregator.last_accepted().await?;
    assert_eq!((model, round), (r3.model_hash, 3));
    eprintln!("tokens_are_conserved_over_a_task: {:?}", t0.elapsed());
    Ok(())
}

#[tokio::test]
async fn rejected_rounds_slash_proposers_and_remove_repeat_offenders() -> anyhow::Result<()> {
    let t0 = Instant::now();
    let s = common::setup(
        4,
        100,
        |_| 100,
        |p| {
            p.strikes_before_removal = 2;
            p.slash_bps = 2000;
        },
    )
    .await?;
    let members: Vec<_> = s.members.iter().map(|m| m.address()).collect();
    let (initial, _) = s.aggregator.last_accepted().await?;
    let reject_all = RoundScript {
        rejecters: members.clone(),
        ..RoundScript::default()
    };

    let r1 = common::play(&s, &reject_all).await?;
    assert_eq!(r1.outcome, Outcome::Rejected);
    assert_eq!(s.aggregator.last_accepted().await?, (initial, 0));
    let hundred = common_flock(100);
    for p in &r1.proposers {
        let stake = s.aggregator.stake_of(*p).await?;
        assert_eq!(
            stake,
            hundred - hundred * U256::from(2000u32) / U256::from(10_000u32)
        );
        assert_eq!(
            s.aggregator.participant_info(*p).await?.strikes,
            U256::from(1u8)
        );
    }
    for v in &r1.voters {
        assert!(
            s.aggregator.stake_of(*v).await? >= hundred,
            "reject voters are winners"
        );
    }

    // Play rejected rounds until someone has proposed twice: they are removed and banned.
    let mut proposed: std::collections::HashMap<_, u32> =
        r1.proposers.iter().map(|p| (*p, 1)).collect();
    let mut removed = None;
    for _ in 0..8 {
        let r = common::play(&s, &reject_all).await?;
        assert_eq!(r.outcome, Outcome::Rejected);
        for p in &r.proposers {
            let n = proposed.entry(*p).or_default();
            *n += 1;
            if *n == 2 {
                removed = Some(*p);
            }
        }
        if removed.is_some() {
            break;
        }
        if s.aggregator.participants().await?.len() < 2 {
            break;
        }
    }
    let offender = removed.ok_or_else(|| anyhow::anyhow!("nobody proposed twice in 9 rounds"))?;
    assert!(!s.aggregator.participants().await?.contains(&offender));
    assert!(s.aggregator.is_banned(offender).await?);
    assert_eq!(s.aggregator.stake_of(offender).await?, U256::ZERO);
    let pos = s
        .members
        .iter()
        .position(|m| m.address() == offender)
        .ok_or_else(|| anyhow::anyhow!("?"))?;
    let client = &s.members[pos];
    // Removal released its identity key.
    let key = dev_identity(common::FIRST_MEMBER + pos);
    assert_eq!(s.aggregator.identity_of(offender).await?, B256::ZERO);
    assert_eq!(s.aggregator.participant_of_identity(key).await?, None);
    let err = client
        .join(common_flock(50), key)
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("banned rejoined"))?;
    assert_eq!(err.revert_name(), Some("Banned"), "{err}");
    assert_eq!(s.aggregator.last_accepted().await?, (initial, 0));
    eprintln!(
        "rejected_rounds_slash_proposers_and_remove_repeat_offenders: {:?}",
        t0.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn roles_on_chain_match_the_pure_draw() -> anyhow::Result<()> {
    let t0 = Instant::now();
    let s = common::setup(7, 0, |_| 10, |_| {}).await?;
    let r = common::play(&s, &RoundScript::default()).await?;
    let n = r.members.len();
    let k = proposer_count(n, s.params.proposer_share_bps);
    assert_eq!(r.proposers.len(), k);
    let on_chain = s.aggregator.proposer_indices_on_chain(r.seed, n, k).await?;
    assert_eq!(on_chain, proposer_indices(r.seed, n, k));
    let mut expected: Vec<_> = on_chain.iter().map(|&i| r.members[i]).collect();
    let mut got = r.proposers.clone();
    expected.sort();
    got.sort();
    assert_eq!(got, expected);
    eprintln!("roles_on_chain_match_the_pure_draw: {:?}", t0.elapsed());
    Ok(())
}

#[tokio::test]
async fn strikes_survive_leaving_and_rejoining_under_the_account_or_the_device_key()
-> anyhow::Result<()> {
    let t0 = Instant::now();
    let s = common::setup(5, 100, |_| 100, |p| p.strikes_before_removal = 3).await?;
    let members: Vec<_> = s.members.iter().map(|m| m.address()).collect();
    // Everyone rejects: the proposers are slashed once each.
    let r1 = common::play(
        &s,
        &RoundScript {
            rejecters: members.clone(),
            ..RoundScript::default()
        },
    )
    .await?;
    assert_eq!(r1.outcome, Outcome::Rejected);
    let struck = r1.proposers[0];
    let i = members
        .iter()
        .position(|m| *m == struck)
        .unwrap_or_default();
    let key = dev_identity(common::FIRST_MEMBER + i);
    assert_eq!(
        s.aggregator.participant_info(struck).await?.strikes,
        U256::from(1u8)
    );
    // Leave and rejoin under the same account: the strike is still there.
    let member = &s.members[i];
    member.leave().await?;
    member.join(common_flock(50), key).await?;
    assert_eq!(
        s.aggregator.participant_info(struck).await?.strikes,
        U256::from(1u8)
    );
    // Leave again; another account that never took part joins with the same device key.
    member.leave().await?;
    let other = s
        .members
        .iter()
        .position(|m| !r1.proposers.contains(&m.address()));
    let other = &s.members[other.ok_or_else(|| anyhow::anyhow!("no voter"))?];
    assert_eq!(
        s.aggregator
            .participant_info(other.address())
            .await?
            .strikes,
        U256::ZERO
    );
    other.leave().await?;
    other.join(common_flock(50), key).await?;
    assert_eq!(
        s.aggregator
            .participant_info(other.address())
            .await?
            .strikes,
        U256::from(1u8),
        "the device key's strike came with it"
    );
    eprintln!(
        "strikes_survive_leaving_and_rejoining_under_the_account_or_the_device_key: {:?}",
        t0.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn members_absent_when_a_round_opened_are_not_slashed_but_withholders_are()
-> anyhow::Result<()> {
    let t0 = Instant::now();
    let s = common::setup(6, 100, |_| 100, |_| {}).await?;
    let members: Vec<_> = s.members.iter().map(|m| m.address()).collect();
    // Anyone may open a round: members 0 and 1 are offline and commit nothing; member 2
    // commits a beacon share and withholds it.
    let r = common::play(
        &s,
        &RoundScript {
            beacon_skippers: vec![members[0], members[1]],
            beacon_withholders: vec![members[2]],
            ..RoundScript::default()
        },
    )
    .await?;
    assert_eq!(r.outcome, Outcome::Accepted);
    for absent in &members[..2] {
        let info = s.aggregator.participant_info(*absent).await?;
        assert_eq!(info.strikes, U256::ZERO, "an absent member has no strike");
        assert_eq!(info.stake, common_flock(100), "nor is it slashed or paid");
    }
    let withholder = s.aggregator.participant_info(members[2]).await?;
    assert_eq!(withholder.strikes, U256::from(1u8));
    assert!(withholder.stake < common_flock(100));
    eprintln!(
        "members_absent_when_a_round_opened_are_not_slashed_but_withholders_are: {:?}",
        t0.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn a_small_stake_is_never_slashed_by_zero() -> anyhow::Result<()> {
    let t0 = Instant::now();
    let s = common::setup(
        4,
        100,
        |_| 100,
        |p| {
            p.min_stake = U256::from(1u8);
            p.slash_bps = 2000;
        },
    )
    .await?;
    // Everyone restakes 3 wei: 20 % of it is 0.6 wei, which floor division made 0.
    for (i, m) in s.members.iter().enumerate() {
        m.leave().await?;
        m.join(U256::from(3u8), dev_identity(common::FIRST_MEMBER + i))
            .await?;
    }
    let members: Vec<_> = s.members.iter().map(|m| m.address()).collect();
    let r = common::play(
        &s,
        &RoundScript {
            rejecters: members,
            ..RoundScript::default()
        },
    )
    .await?;
    assert_eq!(r.outcome, Outcome::Rejected);
    for p in &r.proposers {
        assert_eq!(
            s.aggregator.stake_of(*p).await?,
            U256::from(2u8),
            "slashed 1 wei"
        );
    }
    assert_eq!(
        s.aggregator.round_info(r.round).await?.slashed,
        U256::from(r.proposers.len())
    );
    eprintln!("a_small_stake_is_never_slashed_by_zero: {:?}", t0.elapsed());
    Ok(())
}

fn common_flock(n: u64) -> U256 {
    flock_chain::params::FLOCK * U256::from(n)
}
