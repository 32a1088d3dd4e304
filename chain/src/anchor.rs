//! What the aggregator needs to anchor candidates: an [`Anchorer`] that first writes each
//! anchor to a durable [`AnchorQueue`] (so it survives a restart), then sends it, retrying
//! transient failures (node unreachable, timeouts) with exponential backoff, and removes it
//! from the queue only once it is confirmed. "This exact anchor is already on chain" is
//! success (the contract makes an identical anchor a no-op, so a retry after a lost answer
//! never anchors twice); a different anchor for the same round, or any other refusal, is a hard
//! error and the file moves to `rejected/`.

use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, TxHash, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use tokio::sync::Mutex;

use crate::contracts::FlTask;
use crate::error::{ChainError, Revert};
use crate::merkle::merkle_root;
use crate::tx::{self, ConfirmOptions};

pub use crate::queue::{Anchor, AnchorQueue, QueueError};

/// Retry and confirmation policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnchorConfig {
    /// How to wait for the anchor transaction (confirmations, timeout, poll interval).
    pub confirm: ConfirmOptions,
    /// First pause after a transient failure; doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Longest pause between two attempts.
    pub max_backoff: Duration,
    /// `submit` and `flush` return [`AnchorError::StillQueued`] after trying this long (the
    /// anchor stays queued); `None`: keep trying.
    pub give_up_after: Option<Duration>,
}

impl Default for AnchorConfig {
    fn default() -> Self {
        Self {
            confirm: ConfirmOptions {
                confirmations: 2,
                ..ConfirmOptions::default()
            },
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            give_up_after: None,
        }
    }
}

/// An anchor confirmed on chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorReceipt {
    /// The anchor.
    pub anchor: Anchor,
    /// The transaction that anchored it, if this attempt sent it (`None`: it was already on
    /// chain, from an earlier attempt or process).
    pub tx: Option<TxHash>,
    /// The block of the `CandidateAnchored` event (or the head when the node could not say).
    pub block: u64,
}

/// Why an anchor did not land.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnchorError {
    /// The queue could not be written or read.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The round already has a different anchor on chain.
    #[error("round {round}: a different candidate is already anchored on chain (model {on_chain})")]
    Conflict {
        /// The round.
        round: u64,
        /// The model hash on chain.
        on_chain: B256,
    },
    /// The task refused the anchor (`NotAggregator`, `WrongRound(..)`, `WrongPhase(..)`,
    /// `PrevModelMismatch(..)`, `BadContributors`, ...).
    #[error("round {round}: the task refused the anchor: {revert}")]
    Refused {
        /// The round.
        round: u64,
        /// The decoded revert.
        revert: Revert,
    },
    /// A failure that retrying will not cure.
    #[error("round {round}: {error}")]
    Chain {
        /// The round.
        round: u64,
        /// What failed.
        error: ChainError,
    },
    /// Still failing transiently after `give_up_after`; the anchor stays queued.
    #[error("round {round}: still queued after {waited:?}; last error: {last}")]
    StillQueued {
        /// The round.
        round: u64,
        /// How long we tried.
        waited: Duration,
        /// The last transient error.
        last: ChainError,
    },
}

enum Failure {
    Transient(ChainError),
    Hard(AnchorError),
}

/// Sends anchors from a durable queue.
#[derive(Debug)]
pub struct Anchorer {
    queue: AnchorQueue,
    provider: DynProvider,
    from: Address,
    config: AnchorConfig,
    sending: Mutex<()>,
}

impl Anchorer {
    /// An anchorer sending as `from` (the task's aggregator; `provider` must hold its key).
    pub fn new(
        queue: AnchorQueue,
        provider: DynProvider,
        from: Address,
        config: AnchorConfig,
    ) -> Self {
        Self {
            queue,
            provider,
            from,
            config,
            sending: Mutex::new(()),
        }
    }

    /// The queue.
    pub fn queue(&self) -> &AnchorQueue {
        &self.queue
    }

    /// Queues `anchor` durably, then sends it until it is confirmed (or refused, or
    /// `give_up_after` passes).
    pub async fn submit(&self, anchor: Anchor) -> Result<AnchorReceipt, AnchorError> {
        self.queue.push(&anchor)?;
        self.deliver(&anchor).await
    }

    /// Sends every queued anchor, oldest round first (after a restart); stops at the first
    /// error.
    pub async fn flush(&self) -> Result<Vec<AnchorReceipt>, AnchorError> {
        let mut out = Vec::new();
        for anchor in self.queue.pending()? {
            out.push(self.deliver(&anchor).await?);
        }
        Ok(out)
    }

    async fn deliver(&self, anchor: &Anchor) -> Result<AnchorReceipt, AnchorError> {
        let _one_at_a_time = self.sending.lock().await;
        let start = Instant::now();
        let mut backoff = self.config.initial_backoff;
        loop {
            match self.attempt(anchor).await {
                Ok(receipt) => {
                    self.queue.remove(anchor)?;
                    return Ok(receipt);
                }
                Err(Failure::Hard(e)) => {
                    if matches!(
                        e,
                        AnchorError::Conflict { .. } | AnchorError::Refused { .. }
                    ) {
                        self.queue.reject(anchor, &e.to_string())?;
                    }
                    return Err(e);
                }
                Err(Failure::Transient(last)) => {
                    let waited = start.elapsed();
                    if self.config.give_up_after.is_some_and(|g| waited >= g) {
                        return Err(AnchorError::StillQueued {
                            round: anchor.round,
                            waited,
                            last,
                        });
                    }
                    tracing::warn!(round = anchor.round, error = %last, ?backoff, "anchor not sent yet, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.config.max_backoff);
                }
            }
        }
    }

    async fn attempt(&self, anchor: &Anchor) -> Result<AnchorReceipt, Failure> {
        if let Some(r) = self.already_anchored(anchor).await? {
            return Ok(r);
        }
        let task = FlTask::new(anchor.task, self.provider.clone());
        let sent = task
            .call_builder(&anchor.call())
            .from(self.from)
            .send()
            .await
            .map_err(ChainError::from);
        let hash = match sent {
            Ok(pending) => *pending.tx_hash(),
            Err(ChainError::Reverted(r)) if r.name() == "AlreadyAnchored" => {
                // Landed between our check and our send (or from another process).
                return match self.already_anchored(anchor).await? {
                    Some(receipt) => Ok(receipt),
                    None => Err(self.classify(anchor, ChainError::Reverted(r))),
                };
            }
            Err(e) => return Err(self.classify(anchor, e)),
        };
        match tx::wait(&self.provider, hash, &self.config.confirm).await {
            Ok(c) => Ok(AnchorReceipt {
                anchor: anchor.clone(),
                tx: Some(hash),
                block: c.block,
            }),
            Err(ChainError::FailedOnChain(h)) => match self.already_anchored(anchor).await? {
                Some(receipt) => Ok(receipt),
                None => Err(self.classify(anchor, ChainError::FailedOnChain(h))),
            },
            Err(e) => Err(self.classify(anchor, e)),
        }
    }

    /// `Some` if exactly this anchor is on chain (and confirmed), a hard failure if another is.
    async fn already_anchored(&self, anchor: &Anchor) -> Result<Option<AnchorReceipt>, Failure> {
        let task = FlTask::new(anchor.task, self.provider.clone());
        let c = task
            .candidateOf(U256::from(anchor.round))
            .call()
            .await
            .map_err(|e| self.classify(anchor, e.into()))?;
        if !c.anchored {
            return Ok(None);
        }
        let same = c.modelHash == anchor.model_hash
            && c.prevModelHash == anchor.prev_model_hash
            && c.accuracyBps == anchor.accuracy_bps
            && c.contributorsRoot == merkle_root(&anchor.contributors);
        if !same {
            return Err(Failure::Hard(AnchorError::Conflict {
                round: anchor.round,
                on_chain: c.modelHash,
            }));
        }
        let block = self
            .anchor_block(anchor)
            .await
            .map_err(|e| self.classify(anchor, e))?;
        let start = Instant::now();
        tx::wait_for_block(&self.provider, block, &self.config.confirm, start)
            .await
            .map_err(|e| self.classify(anchor, e))?;
        Ok(Some(AnchorReceipt {
            anchor: anchor.clone(),
            tx: None,
            block,
        }))
    }

    /// Block of the round's `CandidateAnchored` event; the head if the node has no such log
    /// (a conservative base for counting confirmations).
    async fn anchor_block(&self, anchor: &Anchor) -> Result<u64, ChainError> {
        let filter = Filter::new()
            .address(anchor.task)
            .event_signature(FlTask::CandidateAnchored::SIGNATURE_HASH)
            .topic1(B256::from(U256::from(anchor.round)))
            .from_block(0);
        let logs = match self.provider.get_logs(&filter).await {
            Ok(logs) => logs,
            Err(e) => {
                let e = ChainError::from(e);
                if e.is_transient() {
                    return Err(e);
                }
                Vec::new() // e.g. a provider that refuses the range
            }
        };
        match logs.iter().filter_map(|l| l.block_number).min() {
            Some(b) => Ok(b),
            None => Ok(self.provider.get_block_number().await?),
        }
    }

    fn classify(&self, anchor: &Anchor, e: ChainError) -> Failure {
        match e {
            e if e.is_transient() => Failure::Transient(e),
            // A JSON-RPC error without revert data (nonce races after a node restart, a busy
            // node): worth another try.
            ChainError::Rpc(_) => Failure::Transient(e),
            ChainError::Reverted(revert) => Failure::Hard(AnchorError::Refused {
                round: anchor.round,
                revert,
            }),
            error => Failure::Hard(AnchorError::Chain {
                round: anchor.round,
                error,
            }),
        }
    }
}
