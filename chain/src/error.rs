//! Errors of the chain client. A revert is decoded against the contracts' ABIs into a readable
//! message (`NotAggregator`, `AlreadyAnchored(3)`, `WrongPhase(Training)`) and kept typed for
//! `FlTask` ([`Revert::task_error`]); failures to reach the node are told apart from refusals
//! ([`ChainError::is_transient`]) so callers know what is worth retrying.

use alloy::contract::Error as ContractError;
use alloy::dyn_abi::{DynSolValue, JsonAbiExt};
use alloy::json_abi::JsonAbi;
use alloy::primitives::{Bytes, TxHash};
use alloy::sol_types::{Panic, Revert as SolRevert, SolError, SolInterface};
use alloy::transports::{RpcError, TransportError, TransportErrorKind};
use std::fmt;
use std::time::Duration;

use crate::contracts::{FlTask, FlockToken, TaskManager};
use crate::roles::Phase;

/// A contract call that reverted, with its data decoded where an ABI knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revert {
    data: Bytes,
    message: String,
}

impl Revert {
    /// Decodes revert `data` against `FlTask`, `TaskManager` and `FlockToken` and Solidity's
    /// `Error(string)` / `Panic(uint256)`; unknown data is shown as hex.
    pub fn decode(data: Bytes) -> Self {
        let message = describe(&data).unwrap_or_else(|| {
            if data.is_empty() {
                "reverted without data".to_owned()
            } else {
                format!("unknown revert 0x{}", hex::encode(&data))
            }
        });
        Self { data, message }
    }

    /// The raw revert data.
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// The readable message, e.g. `AlreadyAnchored(3)`.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The error's name (the message up to its arguments), e.g. `AlreadyAnchored`.
    pub fn name(&self) -> &str {
        self.message.split('(').next().unwrap_or(&self.message)
    }

    /// The `FlTask` custom error, if the data is one.
    pub fn task_error(&self) -> Option<FlTask::FlTaskErrors> {
        FlTask::FlTaskErrors::abi_decode(&self.data).ok()
    }
}

impl fmt::Display for Revert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

fn describe(data: &[u8]) -> Option<String> {
    if data.len() < 4 {
        return None;
    }
    if let Ok(r) = SolRevert::abi_decode(data) {
        return Some(format!("Error({:?})", r.reason));
    }
    if let Ok(p) = Panic::abi_decode(data) {
        return Some(format!("Panic({})", p.code));
    }
    for abi in [
        FlTask::abi::contract(),
        TaskManager::abi::contract(),
        FlockToken::abi::contract(),
    ] {
        if let Some(m) = describe_with(&abi, data) {
            return Some(m);
        }
    }
    None
}

fn describe_with(abi: &JsonAbi, data: &[u8]) -> Option<String> {
    let error = abi
        .errors()
        .find(|e| e.selector().as_slice() == &data[..4])?;
    let values = error.abi_decode_input(&data[4..]).ok()?;
    if values.is_empty() {
        return Some(error.name.clone());
    }
    let args: Vec<String> = if error.name == "WrongPhase" {
        values.iter().map(phase_name).collect()
    } else {
        values.iter().map(show_value).collect()
    };
    Some(format!("{}({})", error.name, args.join(", ")))
}

fn phase_name(v: &DynSolValue) -> String {
    match v
        .as_uint()
        .and_then(|(u, _)| u8::try_from(u).ok())
        .map(Phase::from_u8)
    {
        Some(Some(p)) => format!("{p:?}"),
        _ => show_value(v),
    }
}

fn show_value(v: &DynSolValue) -> String {
    match v {
        DynSolValue::Uint(u, _) => u.to_string(),
        DynSolValue::Int(i, _) => i.to_string(),
        DynSolValue::Address(a) => a.to_string(),
        DynSolValue::Bool(b) => b.to_string(),
        DynSolValue::String(s) => format!("{s:?}"),
        DynSolValue::FixedBytes(w, n) => format!("0x{}", hex::encode(&w[..*n])),
        DynSolValue::Bytes(b) => format!("0x{}", hex::encode(b)),
        other => format!("{other:?}"),
    }
}

/// What went wrong talking to the chain.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The contract refused the call (simulation or estimation reverted).
    #[error("contract refused: {0}")]
    Reverted(Revert),
    /// The node could not be reached or did not answer (connection refused, timeout, HTTP
    /// error): worth retrying.
    #[error("chain unreachable: {0}")]
    Unreachable(String),
    /// The node answered with a JSON-RPC error that is not a revert.
    #[error("node refused the request: {0}")]
    Rpc(String),
    /// A mined transaction has status 0.
    #[error("transaction {0} was mined but reverted")]
    FailedOnChain(TxHash),
    /// A transaction was not mined (or not confirmed) in time.
    #[error("transaction {hash} not confirmed after {waited:?}")]
    NotConfirmed {
        /// The transaction.
        hash: TxHash,
        /// How long we waited.
        waited: Duration,
    },
    /// An answer could not be decoded, or a request could not be encoded.
    #[error("bad data from the chain: {0}")]
    Abi(String),
    /// The node's URL is not valid, or the HTTP client could not be built.
    #[error("bad endpoint: {0}")]
    Endpoint(String),
    /// A signing key file could not be read or does not hold a key.
    #[error("signing key {0}")]
    Key(String),
    /// A receipt or log did not contain what the contract always emits.
    #[error("unexpected chain data: {0}")]
    Unexpected(String),
    /// The chain's state at the block asked cannot answer the question (e.g. the roster of a
    /// round that has not started, or that is finalised and whose members may have left).
    #[error("not available on chain: {0}")]
    Unavailable(String),
}

impl ChainError {
    /// Whether retrying the same request later may succeed (the node was unreachable, slow, or
    /// the transaction not yet confirmed).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable(_) | Self::NotConfirmed { .. })
    }

    /// The decoded revert, if the contract refused.
    pub fn revert(&self) -> Option<&Revert> {
        match self {
            Self::Reverted(r) => Some(r),
            _ => None,
        }
    }

    /// The `FlTask` custom error, if the task refused.
    pub fn task_error(&self) -> Option<FlTask::FlTaskErrors> {
        self.revert().and_then(Revert::task_error)
    }

    /// The name of the custom error the contract reverted with, if any.
    pub fn revert_name(&self) -> Option<&str> {
        self.revert().map(Revert::name)
    }
}

impl From<TransportError> for ChainError {
    fn from(e: TransportError) -> Self {
        match &e {
            RpcError::ErrorResp(payload) => match payload.as_revert_data() {
                Some(data) => Self::Reverted(Revert::decode(data)),
                None => Self::Rpc(payload.to_string()),
            },
            RpcError::Transport(TransportErrorKind::NonRetryable(_)) => Self::Rpc(e.to_string()),
            RpcError::Transport(_) | RpcError::NullResp => Self::Unreachable(e.to_string()),
            _ => Self::Abi(e.to_string()),
        }
    }
}

impl From<ContractError> for ChainError {
    fn from(e: ContractError) -> Self {
        match e {
            ContractError::TransportError(t) => t.into(),
            ContractError::PendingTransactionError(p) => Self::Unreachable(p.to_string()),
            other => match other.as_revert_data() {
                Some(data) => Self::Reverted(Revert::decode(data)),
                None => Self::Abi(other.to_string()),
            },
        }
    }
}
