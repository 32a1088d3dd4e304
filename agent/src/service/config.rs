//! `agent.toml`. Unknown keys are refused; errors name the key.
//!
//! ```toml
//! task = "breast-cancer"
//!
//! [aggregator]
//! address = "127.0.0.1:7443"
//! server_name = "localhost"
//!
//! [identity]
//! ca = "ca.pem"
//! cert = "hospital-1.pem"
//! key = "hospital-1.key"
//!
//! [data]
//! path = "hospital-1.csv"
//! label = "label"
//!
//! [agent]
//! state_dir = "state"
//! backend = "auto"      # auto | cpu | gpu
//!
//! [secagg]              # this device's floors, whatever the aggregator's round says
//! min_participants = 4  # fewest devices in a round
//! min_contributors = 3  # fewest inputs a sum may hold
//! max_attempts = 8      # attempts of one round this device takes part in
//! [secagg.floor]        # the round's threat model must be at least this strong
//! dropout_ppm = 100000
//! corrupt_ppm = 0
//! failure_bits = 40
//!
//! [chain]               # optional: the task on chain
//! rpc = "http://127.0.0.1:8545"
//! task = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
//! account = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
//! key = "chain.key"     # the account's private key: stake, beacon, votes (else read-only)
//! stake = "100"         # FLOCK to stake when joining (default: the task's minimum)
//! accept_tolerance = 0.02   # vote to accept unless the candidate loses more accuracy
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::train::BackendChoice;

/// The whole file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The task's name (its SHA-256 is the task id).
    pub task: String,
    /// `[aggregator]`.
    pub aggregator: AggregatorSection,
    /// `[identity]`.
    pub identity: IdentitySection,
    /// `[data]` (absent when the embedder brings its own data source).
    pub data: Option<DataSection>,
    /// `[agent]`.
    #[serde(default)]
    pub agent: AgentSection,
    /// `[chain]`: the task on chain (FL Alliance), if the federation uses one.
    pub chain: Option<ChainSection>,
    /// `[secagg]`: the device's own floors for every SecAgg+ round (defaults:
    /// [`flock_protocol::ClientPolicy::default`]).
    #[serde(default)]
    pub secagg: flock_protocol::ClientPolicy,
}

/// `[chain]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSection {
    /// JSON-RPC endpoint.
    #[serde(default = "default_rpc")]
    pub rpc: String,
    /// The task contract's address (`0x` + 40 hex digits).
    pub task: String,
    /// This agent's staking address.
    pub account: String,
    /// File holding the account's private key (64 hex digits). Without it the agent only
    /// reads the chain (`verify-contribution`); with it, it stakes, joins and takes part in
    /// each round's beacon and votes.
    pub key: Option<PathBuf>,
    /// FLOCK to stake when joining (decimal, e.g. `"100"` or `"12.5"`); default: the task's
    /// minimum stake.
    pub stake: Option<String>,
    /// As a voter, accept the candidate unless its accuracy on this agent's held-out data is
    /// more than this below the previous model's.
    #[serde(default = "default_accept_tolerance")]
    pub accept_tolerance: f64,
    /// How often to look at the chain, in ms.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
}

fn default_accept_tolerance() -> f64 {
    0.02
}

fn default_poll_ms() -> u64 {
    500
}

fn default_rpc() -> String {
    "http://127.0.0.1:8545".into()
}

/// Whether `text` is `0x` followed by 40 hex digits.
fn is_address(text: &str) -> bool {
    text.strip_prefix("0x")
        .is_some_and(|h| h.len() == 40 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `[aggregator]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregatorSection {
    /// Its UDP address.
    pub address: SocketAddr,
    /// The name its certificate carries.
    #[serde(default = "default_server_name")]
    pub server_name: String,
}

fn default_server_name() -> String {
    "localhost".into()
}

/// `[identity]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitySection {
    /// The federation's CA certificate.
    pub ca: PathBuf,
    /// This device's certificate.
    pub cert: PathBuf,
    /// Its ed25519 key (also the SecAgg+ identity).
    pub key: PathBuf,
}

/// `[data]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// CSV file.
    pub path: PathBuf,
    /// Label column.
    #[serde(default = "default_label")]
    pub label: String,
    /// Fraction held out for local validation.
    #[serde(default = "default_val_fraction")]
    pub val_fraction: f64,
}

fn default_label() -> String {
    "label".into()
}

fn default_val_fraction() -> f64 {
    0.2
}

/// `[agent]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// Where progress and cached models live.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Training backend.
    #[serde(default)]
    pub backend: BackendChoice,
    /// Longest wait between reconnection attempts, in ms.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
}

fn default_state_dir() -> PathBuf {
    "state".into()
}

fn default_max_backoff_ms() -> u64 {
    30_000
}

impl Default for AgentSection {
    fn default() -> Self {
        Self {
            state_dir: default_state_dir(),
            backend: BackendChoice::Auto,
            max_backoff_ms: default_max_backoff_ms(),
        }
    }
}

/// A config error, naming the file and key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Unreadable.
    #[error("{}: {cause}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// Not this schema (toml names the key and line).
    #[error("{}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message.
        message: String,
    },
    /// A value that cannot work.
    #[error("{}: {key}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key.
        key: &'static str,
        /// Why.
        reason: String,
    },
}

impl AgentConfig {
    /// Reads and checks a config; relative paths are resolved against its directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        let mut c: AgentConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut c.identity.ca,
            &mut c.identity.cert,
            &mut c.identity.key,
            &mut c.agent.state_dir,
        ] {
            *p = base.join(&*p);
        }
        if let Some(d) = &mut c.data {
            d.path = base.join(&d.path);
            if !(0.0..1.0).contains(&d.val_fraction) {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    key: "data.val_fraction",
                    reason: format!("{} is not in [0, 1)", d.val_fraction),
                });
            }
        }
        if let Some(chain) = &mut c.chain {
            if let Some(k) = &mut chain.key {
                *k = base.join(&*k);
            }
            if !(0.0..=1.0).contains(&chain.accept_tolerance) {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    key: "chain.accept_tolerance",
                    reason: format!("{} is not in [0, 1]", chain.accept_tolerance),
                });
            }
            if chain.poll_ms == 0 {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    key: "chain.poll_ms",
                    reason: "0".into(),
                });
            }
            for (key, value) in [
                ("chain.task", &chain.task),
                ("chain.account", &chain.account),
            ] {
                if !is_address(value) {
                    return Err(ConfigError::Invalid {
                        path: path.to_path_buf(),
                        key,
                        reason: format!("{value:?} is not an address (0x and 40 hex digits)"),
                    });
                }
            }
        }
        if c.task.is_empty() {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                key: "task",
                reason: "empty".into(),
            });
        }
        Ok(c)
    }
}
