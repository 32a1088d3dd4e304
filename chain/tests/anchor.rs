//! The anchor queue against a real anvil that goes down mid-anchor and comes back with its
//! state: the anchor stays queued, lands exactly once, and conflicting anchors are refused.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::{B256, U256};
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use flock_chain::anchor::{Anchor, AnchorConfig, AnchorError, AnchorQueue, Anchorer};
use flock_chain::anvil::AnvilOptions;
use flock_chain::contracts::FlTask;
use flock_chain::devnet::{Devnet, dev_identity, dev_key};
use flock_chain::params::{FLOCK, TaskParams};
use flock_chain::provider::connect;
use flock_chain::tx::ConfirmOptions;

fn config(give_up: Option<Duration>) -> AnchorConfig {
    AnchorConfig {
        confirm: ConfirmOptions {
            confirmations: 2,
            timeout: Duration::from_secs(10),
            poll: Duration::from_millis(20),
        },
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(800),
        give_up_after: give_up,
    }
}

async fn anchored_events(
    devnet: &Devnet,
    task: alloy::primitives::Address,
) -> anyhow::Result<usize> {
    let filter = Filter::new()
        .address(task)
        .event_signature(FlTask::CandidateAnchored::SIGNATURE_HASH)
        .from_block(0);
    Ok(devnet.provider().get_logs(&filter).await?.len())
}

#[tokio::test]
async fn an_anchor_survives_a_chain_outage_and_lands_once() -> anyhow::Result<()> {
    let t0 = Instant::now();
    let dir = common::scratch("outage");
    std::fs::create_dir_all(&dir)?;
    let state = dir.join("anvil-state.json");
    let mut devnet = Devnet::start(
        common::FIRST_MEMBER + 3,
        AnvilOptions {
            state_file: Some(state.clone()),
            args: vec![],
        },
    )
    .await?;
    let aggregator_key = dev_key(common::AGGREGATOR)?;
    let params = TaskParams::new(aggregator_key.address());
    // Two tasks: A is anchored by a submit that keeps retrying through the outage, B by a
    // submit that gives up and a new anchorer (a restarted aggregator) that flushes the queue.
    let mut setups = Vec::new();
    for _ in 0..2 {
        let (_, task) = devnet.create_task(&params).await?;
        let mut members = Vec::new();
        for i in 0..3 {
            let m = devnet.task_client(task, common::FIRST_MEMBER + i).await?;
            devnet.mint(m.address(), FLOCK * U256::from(100u8)).await?;
            m.join(params.min_stake, dev_identity(common::FIRST_MEMBER + i))
                .await?;
            members.push(m);
        }
        let aggregator = devnet.task_client(task, common::AGGREGATOR).await?;
        let (round, proposers) = common::to_training(&devnet, &members, &aggregator).await?;
        let anchor = Anchor {
            task,
            round,
            model_hash: B256::repeat_byte(0xab),
            prev_model_hash: params.initial_model_hash,
            accuracy_bps: 8_800,
            contributors: proposers,
        };
        setups.push(anchor);
    }
    let (a, b) = (setups[0].clone(), setups[1].clone());
    let url = devnet.url();
    let provider = connect(&url, [aggregator_key.clone()], Duration::from_secs(2))?;
    let queue_dir = dir.join("queue");

    // The node goes down (SIGTERM: anvil writes its state).
    devnet
        .anvil()
        .ok_or_else(|| anyhow::anyhow!("the devnet started no anvil"))?
        .stop()?;

    // B: give up after a second; the anchor stays queued on disk.
    let anchorer = Anchorer::new(
        AnchorQueue::open(&queue_dir)?,
        provider.clone(),
        aggregator_key.address(),
        config(Some(Duration::from_secs(1))),
    );
    match anchorer.submit(b.clone()).await {
        Err(AnchorError::StillQueued { round, .. }) => assert_eq!(round, b.round),
        other => anyhow::bail!("expected StillQueued, got {other:?}"),
    }
    assert_eq!(anchorer.queue().pending()?, vec![b.clone()]);
    drop(anchorer);

    // A: keeps retrying while the node is down.
    let anchorer = Arc::new(Anchorer::new(
        AnchorQueue::open(&queue_dir)?,
        provider.clone(),
        aggregator_key.address(),
        config(None),
    ));
    let submit = tokio::spawn({
        let anchorer = Arc::clone(&anchorer);
        let a = a.clone();
        async move { anchorer.submit(a).await }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !submit.is_finished(),
        "submit returned while the chain was down"
    );
    assert_eq!(AnchorQueue::open(&queue_dir)?.pending()?.len(), 2);

    // The node comes back with its state; blocks keep coming so confirmations can count.
    devnet
        .anvil()
        .ok_or_else(|| anyhow::anyhow!("the devnet started no anvil"))?
        .restart()?;
    let miner = tokio::spawn({
        let p = connect(&url, [], Duration::from_secs(2))?;
        async move {
            for _ in 0..600 {
                let _ = p
                    .raw_request::<_, serde_json::Value>("evm_mine".into(), ())
                    .await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    let landed = tokio::time::timeout(Duration::from_secs(60), submit).await???;
    assert_eq!(landed.anchor, a);
    assert!(landed.tx.is_some());

    // A restarted aggregator flushes B.
    let restarted = Anchorer::new(
        AnchorQueue::open(&queue_dir)?,
        provider.clone(),
        aggregator_key.address(),
        config(Some(Duration::from_secs(30))),
    );
    let flushed = restarted.flush().await?;
    assert_eq!(flushed.len(), 1);
    assert_eq!(flushed[0].anchor, b);
    assert!(restarted.queue().pending()?.is_empty());

    // Exactly one CandidateAnchored per task; resubmitting is a no-op success.
    assert_eq!(anchored_events(&devnet, a.task).await?, 1);
    assert_eq!(anchored_events(&devnet, b.task).await?, 1);
    let again = restarted.submit(a.clone()).await?;
    assert_eq!(again.tx, None, "already on chain: nothing sent");
    assert_eq!(anchored_events(&devnet, a.task).await?, 1);

    // A different anchor for an anchored round is a hard error, moved to rejected/.
    let other = Anchor {
        model_hash: B256::repeat_byte(0xcd),
        ..a.clone()
    };
    match restarted.submit(other).await {
        Err(AnchorError::Conflict { round, on_chain }) => {
            assert_eq!(round, a.round);
            assert_eq!(on_chain, a.model_hash);
        }
        other => anyhow::bail!("expected Conflict, got {other:?}"),
    }
    assert!(restarted.queue().pending()?.is_empty());
    assert_eq!(std::fs::read_dir(queue_dir.join("rejected"))?.count(), 2);
    miner.abort();
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "an_anchor_survives_a_chain_outage_and_lands_once: {:?}",
        t0.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn a_refused_anchor_is_not_retried() -> anyhow::Result<()> {
    let s = common::setup(3, 0, |_| 10, |_| {}).await?;
    let (round, proposers) = common::to_training(&s.devnet, &s.members, &s.aggregator).await?;
    let dir = common::scratch("refused");
    // A member's key is not the aggregator's.
    let member_key = dev_key(common::FIRST_MEMBER)?;
    let provider = connect(
        &s.devnet.url(),
        [member_key.clone()],
        Duration::from_secs(2),
    )?;
    let anchorer = Anchorer::new(
        AnchorQueue::open(&dir)?,
        provider,
        member_key.address(),
        config(None),
    );
    let anchor = Anchor {
        task: s.task,
        round,
        model_hash: B256::repeat_byte(1),
        prev_model_hash: s.params.initial_model_hash,
        accuracy_bps: 5000,
        contributors: proposers,
    };
    let err = tokio::time::timeout(Duration::from_secs(20), anchorer.submit(anchor)).await?;
    match err {
        Err(AnchorError::Refused { revert, .. }) => assert_eq!(revert.message(), "NotAggregator"),
        other => anyhow::bail!("expected Refused(NotAggregator), got {other:?}"),
    }
    assert!(anchorer.queue().pending()?.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
