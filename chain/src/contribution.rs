//! Proof that an address contributed to a round, from chain data alone: the contributors list
//! is the calldata of the round's `anchorCandidate` transaction (found through its
//! `CandidateAnchored` event), checked against the Merkle root the contract computed and
//! stored; the proof is the Merkle path of the address's leaf to that root.

use alloy::consensus::Transaction as _;
use alloy::primitives::{Address, B256, TxHash, U256};
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy::sol_types::{SolCall, SolEvent};

use crate::ChainError;
use crate::contracts::FlTask;
use crate::merkle::{leaf, merkle_proof, merkle_root, verify_proof};
use crate::task::TaskClient;

/// Why a contribution could not be proved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContributionError {
    /// Reading the chain failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// No candidate was anchored for the round.
    #[error("round {0} has no anchored candidate")]
    NotAnchored(u64),
    /// The address is not in the round's contributors.
    #[error("{address} is not among the {count} contributors of round {round}")]
    NotAContributor {
        /// The address.
        address: Address,
        /// The round.
        round: u64,
        /// How many contributed.
        count: usize,
    },
    /// The chain's data do not agree with each other (a node serving bad data).
    #[error("round {round}: {what}")]
    Inconsistent {
        /// The round.
        round: u64,
        /// What disagrees.
        what: String,
    },
}

/// A membership proof of one address in one round's contributors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContributionProof {
    /// The round.
    pub round: u64,
    /// The contributor.
    pub address: Address,
    /// The model the round produced (the anchored candidate).
    pub model_hash: B256,
    /// The contributors root stored on chain.
    pub root: B256,
    /// The Merkle path from the address's leaf to the root.
    pub proof: Vec<B256>,
    /// How many contributed.
    pub contributors: usize,
    /// The anchoring transaction.
    pub anchor_tx: TxHash,
}

impl ContributionProof {
    /// Whether the path leads from the address's leaf to the root.
    pub fn verify(&self) -> bool {
        verify_proof(&self.proof, self.root, leaf(self.address))
    }
}

/// Proves that `address` contributed to `round` of `client`'s task.
pub async fn prove(
    client: &TaskClient,
    round: u64,
    address: Address,
) -> Result<ContributionProof, ContributionError> {
    let candidate = client.candidate_of(round).await?;
    if !candidate.anchored {
        return Err(ContributionError::NotAnchored(round));
    }
    let inconsistent = |what: String| ContributionError::Inconsistent { round, what };
    let filter = Filter::new()
        .address(client.task_address())
        .event_signature(FlTask::CandidateAnchored::SIGNATURE_HASH)
        .topic1(B256::from(U256::from(round)))
        .from_block(0);
    let logs = client
        .provider()
        .get_logs(&filter)
        .await
        .map_err(ChainError::from)?;
    let tx_hash = logs
        .iter()
        .find_map(|l| l.transaction_hash)
        .ok_or_else(|| inconsistent("anchored, but no CandidateAnchored event found".into()))?;
    let tx = client
        .provider()
        .get_transaction_by_hash(tx_hash)
        .await
        .map_err(ChainError::from)?
        .ok_or_else(|| inconsistent(format!("anchor transaction {tx_hash} not found")))?;
    let call = FlTask::anchorCandidateCall::abi_decode(tx.input())
        .map_err(|e| inconsistent(format!("anchor transaction {tx_hash}: {e}")))?;
    let contributors = call.contributors;
    if merkle_root(&contributors) != candidate.contributors_root {
        return Err(inconsistent(
            "the anchored contributors do not hash to the stored root".into(),
        ));
    }
    let index = contributors.iter().position(|a| *a == address).ok_or(
        ContributionError::NotAContributor {
            address,
            round,
            count: contributors.len(),
        },
    )?;
    let proof = merkle_proof(&contributors, index)
        .ok_or_else(|| inconsistent("no Merkle path for a listed contributor".into()))?;
    Ok(ContributionProof {
        round,
        address,
        model_hash: candidate.model_hash,
        root: candidate.contributors_root,
        proof,
        contributors: contributors.len(),
        anchor_tx: tx_hash,
    })
}
