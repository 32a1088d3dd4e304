//! Contribution proofs from chain data alone: every contributor of an anchored round gets a
//! Merkle path that verifies against the stored root; a voter, an unanchored round and a
//! tampered proof are refused.

mod common;

use alloy::primitives::B256;
use flock_chain::contribution::{ContributionError, prove};
use flock_chain::drive::RoundScript;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contributors_prove_membership_and_others_cannot() -> anyhow::Result<()> {
    let s = common::setup(7, 500, |_| 20, |_| {}).await?;
    let r = common::play(&s, &RoundScript::default()).await?;
    assert!(r.proposers.len() >= 2);
    for p in &r.proposers {
        let proof = prove(&s.aggregator, r.round, *p).await?;
        assert!(proof.verify(), "{p}");
        assert_eq!(proof.model_hash, r.model_hash);
        assert_eq!(proof.contributors, r.proposers.len());
        let mut tampered = proof.clone();
        tampered.root = B256::repeat_byte(7);
        assert!(!tampered.verify());
    }
    let voter = r.voters[0];
    match prove(&s.aggregator, r.round, voter).await {
        Err(ContributionError::NotAContributor {
            address,
            round,
            count,
        }) => {
            assert_eq!((address, round, count), (voter, r.round, r.proposers.len()));
        }
        other => panic!("{other:?}"),
    }
    s.members[0].start_round().await?;
    assert!(matches!(
        prove(&s.aggregator, r.round + 1, r.proposers[0]).await,
        Err(ContributionError::NotAnchored(2))
    ));
    Ok(())
}
