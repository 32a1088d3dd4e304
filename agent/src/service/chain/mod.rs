//! The agent's side of an FL Alliance task on chain (`[chain]` with a `key`): it stakes and
//! joins with its device identity ([`start`]), the session's gate reads the chain's last
//! accepted model and a round's drawn seed and proposers ([`ChainGate`]: the session refuses
//! to train from any other model, or in a cohort that is not the proposers), and the
//! follower (`follower`) plays every round this account is a member of: beacon, role, vote.
//! As a proposer it needs nothing from the chain here: the aggregator sends the round over
//! QUIC. The beacon secret and the ballot are kept on disk until revealed (`secrets`).

mod follower;
mod secrets;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::utils::{format_units, parse_units};
use alloy::primitives::{Address, B256, U256};
use flock_chain::task::TaskClient;
use flock_chain::tx::ConfirmOptions;
use flock_model::ModelId;
use tokio::sync::mpsc;
use tracing::info;

use super::AgentError;
use super::chain_side::{BoxFuture, ChainParts, ModelGate, RoundRoles};
use super::config::ChainSection;
use follower::Follower;
use secrets::Secrets;

/// How long a call refused as "not yet" (or failing transiently) is retried.
const PATIENCE: Duration = Duration::from_secs(60);

/// The task on chain, as the session's gate sees it.
struct ChainGate {
    client: TaskClient,
}

impl ModelGate for ChainGate {
    fn last_accepted(&self) -> BoxFuture<'_, Result<(ModelId, u64), AgentError>> {
        Box::pin(async move {
            let (accepted, round) = self.client.last_accepted().await?;
            Ok((ModelId(accepted.0), round))
        })
    }

    fn roles(&self, round: u64) -> BoxFuture<'_, Result<RoundRoles, AgentError>> {
        Box::pin(async move {
            let view = self.client.round_info(round).await?;
            if view.rolesDrawnAt == 0 {
                return Err(AgentError::RoundRefused(format!(
                    "the roles of round {round} are not drawn on chain"
                )));
            }
            let roster = self.client.roster(round).await?;
            Ok(RoundRoles {
                seed: view.seed.0,
                proposers: roster.proposers().map(|e| e.identity.0).collect(),
            })
        })
    }
}

/// Connects with the account's key, stakes and joins if this account is not a participant yet,
/// and starts following the rounds.
pub(crate) async fn start(
    section: &ChainSection,
    identity: [u8; 32],
    state_dir: &Path,
) -> Result<ChainParts, AgentError> {
    let Some(key_path) = &section.key else {
        return Err(AgentError::ChainSetup(
            "chain.key is needed to take part in the task on chain".into(),
        ));
    };
    let key = flock_chain::provider::load_key(key_path)?;
    let account: Address = section
        .account
        .parse()
        .map_err(|e| AgentError::ChainSetup(format!("chain.account: {e}")))?;
    if key.address() != account {
        return Err(AgentError::ChainSetup(format!(
            "chain.key {} belongs to {}, not to chain.account {account}",
            key_path.display(),
            key.address()
        )));
    }
    let task: Address = section
        .task
        .parse()
        .map_err(|e| AgentError::ChainSetup(format!("chain.task: {e}")))?;
    let provider = flock_chain::provider::connect(
        &section.rpc,
        [key],
        flock_chain::provider::DEFAULT_REQUEST_TIMEOUT,
    )?;
    let client = TaskClient::connect(provider, task, account, ConfirmOptions::default()).await?;
    ensure_joined(&client, section, B256::from(identity)).await?;
    let total = client.total_rounds().await?;
    let (tx, evaluations) = mpsc::unbounded_channel();
    let follower = Follower {
        total,
        client: client.clone(),
        evaluate: tx,
        tolerance: section.accept_tolerance,
        poll: Duration::from_millis(section.poll_ms),
        secrets: Secrets(state_dir.join("chain")),
    };
    Ok(ChainParts {
        gate: Arc::new(ChainGate { client }),
        evaluations,
        follower: tokio::spawn(follower.run()),
    })
}

/// Joins the task with `identity` unless this account already takes part (with that identity).
async fn ensure_joined(
    client: &TaskClient,
    section: &ChainSection,
    identity: B256,
) -> Result<(), AgentError> {
    let me = client.address();
    let info = client.participant_info(me).await?;
    if info.active {
        let registered = client.identity_of(me).await?;
        if registered != identity {
            return Err(AgentError::ChainSetup(format!(
                "{me} takes part with identity key {registered}, but this device's key is {identity}"
            )));
        }
        info!(account = %me, stake = %flock(info.stake), "already staked in the task");
        return Ok(());
    }
    if client.is_banned(me).await? {
        return Err(AgentError::ChainSetup(format!(
            "{me} is banned from the task (too many strikes)"
        )));
    }
    let min = client.min_stake().await?;
    let stake = match &section.stake {
        Some(s) => parse_units(s, 18)
            .map(Into::into)
            .map_err(|e| AgentError::ChainSetup(format!("chain.stake {s:?}: {e}")))?,
        None => min,
    };
    client.join(stake, identity).await?;
    info!(account = %me, stake = %flock(stake), "staked and joined the task");
    Ok(())
}

/// FLOCK as a decimal string.
fn flock(amount: impl Into<U256>) -> String {
    format_units(amount.into(), 18).unwrap_or_else(|_| "?".into())
}
