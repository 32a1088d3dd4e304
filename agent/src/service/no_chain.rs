//! The chain side's stand-in in a build without the `chain` feature: the session has no gate
//! (every model passes) and a `[chain]` section with a key is refused, with the reason.

use std::path::Path;

use super::AgentError;
use super::chain_side::ChainParts;
use super::config::ChainSection;

/// Refuses: this build cannot take part in a task on chain.
pub(crate) async fn start(
    _section: &ChainSection,
    _identity: [u8; 32],
    _state_dir: &Path,
) -> Result<ChainParts, AgentError> {
    Err(AgentError::ChainSetup(
        "this agent was built without the `chain` feature: remove chain.key or rebuild".into(),
    ))
}
