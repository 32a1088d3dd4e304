//! Sending a contract transaction and waiting for it: the receipt is polled (not streamed), a
//! status-0 receipt is an error, and the transaction counts as confirmed once the chain is
//! `confirmations - 1` blocks past the one that included it.

use std::time::{Duration, Instant};

use alloy::contract::{CallBuilder, CallDecoder};
use alloy::network::Ethereum;
use alloy::primitives::TxHash;
use alloy::providers::{DynProvider, Provider};

use crate::error::ChainError;

/// How to wait for a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfirmOptions {
    /// Blocks that must include or follow the transaction's block (1 = mined).
    pub confirmations: u64,
    /// How long to wait for the receipt and the confirmations.
    pub timeout: Duration,
    /// Time between two polls.
    pub poll: Duration,
}

impl Default for ConfirmOptions {
    fn default() -> Self {
        Self {
            confirmations: 1,
            timeout: Duration::from_secs(120),
            poll: Duration::from_millis(500),
        }
    }
}

impl ConfirmOptions {
    /// Settings for a local dev node that mines every transaction at once.
    pub fn local() -> Self {
        Self {
            confirmations: 1,
            timeout: Duration::from_secs(30),
            poll: Duration::from_millis(5),
        }
    }
}

/// A mined, successful transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confirmation {
    /// Its hash.
    pub hash: TxHash,
    /// The block that included it.
    pub block: u64,
    /// Gas it used.
    pub gas_used: u64,
}

/// Sends `call` (its gas estimate reverting is a [`ChainError::Reverted`]) and waits for it.
pub(crate) async fn send<D: CallDecoder>(
    call: CallBuilder<&DynProvider, D, Ethereum>,
    provider: &DynProvider,
    opts: &ConfirmOptions,
) -> Result<Confirmation, ChainError> {
    let pending = call.send().await?;
    let hash = *pending.tx_hash();
    wait(provider, hash, opts).await
}

/// Waits for `hash` to be mined and confirmed.
pub async fn wait(
    provider: &DynProvider,
    hash: TxHash,
    opts: &ConfirmOptions,
) -> Result<Confirmation, ChainError> {
    let start = Instant::now();
    let not_confirmed = |start: Instant| ChainError::NotConfirmed {
        hash,
        waited: start.elapsed(),
    };
    let receipt = loop {
        if let Some(r) = provider.get_transaction_receipt(hash).await? {
            break r;
        }
        if start.elapsed() >= opts.timeout {
            return Err(not_confirmed(start));
        }
        tokio::time::sleep(opts.poll).await;
    };
    if !receipt.status() {
        return Err(ChainError::FailedOnChain(hash));
    }
    let block = receipt
        .block_number
        .ok_or_else(|| ChainError::Unexpected(format!("receipt of {hash} has no block number")))?;
    wait_for_block(provider, block, opts, start)
        .await
        .map_err(|e| match e {
            ChainError::NotConfirmed { .. } => not_confirmed(start),
            other => other,
        })?;
    Ok(Confirmation {
        hash,
        block,
        gas_used: receipt.gas_used,
    })
}

/// Waits until the chain head is at least `block + confirmations - 1`.
pub(crate) async fn wait_for_block(
    provider: &DynProvider,
    block: u64,
    opts: &ConfirmOptions,
    start: Instant,
) -> Result<(), ChainError> {
    let target = block.saturating_add(opts.confirmations.max(1) - 1);
    loop {
        if provider.get_block_number().await? >= target {
            return Ok(());
        }
        if start.elapsed() >= opts.timeout {
            return Err(ChainError::NotConfirmed {
                hash: TxHash::ZERO,
                waited: start.elapsed(),
            });
        }
        tokio::time::sleep(opts.poll).await;
    }
}
