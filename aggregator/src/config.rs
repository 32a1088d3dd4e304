//! `aggregator.toml`: the task and how to serve it. Unknown keys are refused, and every error
//! names the key (toml reports the path and line of a parse error; [`Config::validate`] names
//! the key of a bad value).
//!
//! ```toml
//! [task]
//! name = "breast-cancer"
//! rounds = 10
//! seed = 1                 # initial model
//!
//! [model]                  # flock_model::ModelSpec
//! kind = "mlp"
//! inputs = 30
//! hidden = [32]
//! classes = 2
//!
//! [training]               # flock_model::task::TrainConfig, sent to every agent
//! epochs = 2
//! batch_size = 16
//! learning_rate = 0.003
//!
//! [cohort]
//! min = 4
//! max = 8
//! gather_ms = 2000         # wait this long for more agents once `min` are connected
//! sample_cap = 200         # FedAvg weight saturates at this many samples
//!
//! [secagg]
//! dropout = 0.1            # fraction of a cohort that may vanish in a round
//! corrupt = 0.0            # fraction that may collude with the server
//! clip_norm = 4.0          # L2 bound of an update; also the quantiser's range
//! phase_timeout_ms = 30000
//!
//! [server]
//! listen = "127.0.0.1:7443"
//! ca = "ca/ca.pem"
//! crl = "ca/crl.pem"
//! cert = "certs/aggregator.pem"
//! key = "certs/aggregator.key"
//! store = "store"          # or s3://bucket/prefix (AWS_* variables: credentials, endpoint)
//! metrics = "127.0.0.1:9464"   # optional: GET /metrics (Prometheus), GET /healthz
//!
//! [chain]                  # optional: the task on chain (FL Alliance) drives the rounds
//! rpc = "http://127.0.0.1:8545"
//! task = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
//! key = "chain/aggregator.key"   # the task's aggregator account (64 hex digits)
//! confirmations = 1
//! anchor_queue = "anchors" # durable queue of anchors not yet confirmed
//! start_wait_ms = 30000    # wait this long for every staked participant to connect
//!
//! [server_optimizer]       # optional; default: kind = "fedavg", learning_rate = 1
//! kind = "fedadam"         # Reddi et al. 2021
//! learning_rate = 0.01
//! beta1 = 0.9
//! beta2 = 0.99
//! tau = 0.001
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use flock_model::ModelSpec;
use flock_model::task::{Normalisation, TrainConfig};
use serde::Deserialize;

use flock_protocol::{ThreatModel, params};

use crate::optimizer::ServerOptimizer;
use crate::store::StoreLocation;

/// The whole file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[task]`.
    pub task: TaskSection,
    /// `[model]`.
    pub model: ModelSpec,
    /// `[training]`.
    #[serde(default)]
    pub training: TrainConfig,
    /// `[normalisation]`: per-feature mean and std all agents apply; absent: each agent scales
    /// on its own training data.
    pub normalisation: Option<Normalisation>,
    /// `[cohort]`.
    pub cohort: CohortSection,
    /// `[secagg]`.
    pub secagg: SecaggSection,
    /// `[server]`.
    pub server: ServerSection,
    /// `[server_optimizer]`: how the round's mean update moves the global model (FedAvg with
    /// η = 1 if absent).
    #[serde(default)]
    pub server_optimizer: ServerOptimizer,
    /// `[chain]`: the task on chain; when present, the chain opens each round, draws its
    /// proposers (the SecAgg+ cohort) and decides by vote whether its candidate is accepted.
    pub chain: Option<ChainSection>,
    /// `[testing]`: test hooks (builds with the `test-hooks` feature only).
    #[cfg(feature = "test-hooks")]
    #[serde(default)]
    pub testing: TestingSection,
}

/// `[testing]`.
#[cfg(feature = "test-hooks")]
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestingSection {
    /// This round's candidate is a broken model (every parameter zero: it answers one class).
    pub break_candidate_round: Option<u64>,
}

/// `[chain]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSection {
    /// JSON-RPC endpoint.
    #[serde(default = "default_rpc")]
    pub rpc: String,
    /// The task contract (`0x` + 40 hex digits).
    pub task: String,
    /// File holding the private key of the task's aggregator account.
    pub key: PathBuf,
    /// Blocks on top of a transaction's before it counts as done.
    #[serde(default = "default_confirmations")]
    pub confirmations: u64,
    /// Directory of the durable anchor queue.
    #[serde(default = "default_anchor_queue")]
    pub anchor_queue: PathBuf,
    /// Before opening a round, wait this long for every staked participant to connect (a round
    /// opens at once when all have).
    #[serde(default = "default_start_wait_ms")]
    pub start_wait_ms: u64,
}

fn default_rpc() -> String {
    "http://127.0.0.1:8545".into()
}

fn default_confirmations() -> u64 {
    1
}

fn default_anchor_queue() -> PathBuf {
    "anchors".into()
}

fn default_start_wait_ms() -> u64 {
    30_000
}

/// `[task]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSection {
    /// Name; its SHA-256 is the task id.
    pub name: String,
    /// Rounds to run.
    pub rounds: u64,
    /// Seed of the initial model.
    #[serde(default)]
    pub seed: u64,
    /// Number of classes of the labels.
    pub classes: Option<usize>,
}

/// `[cohort]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CohortSection {
    /// Fewest agents a round starts with.
    pub min: u32,
    /// Most agents in a round.
    pub max: u32,
    /// Once `min` agents are connected, wait this long for more.
    #[serde(default = "default_gather_ms")]
    pub gather_ms: u64,
    /// Sample count at which an agent's FedAvg weight saturates.
    #[serde(default = "default_sample_cap")]
    pub sample_cap: u64,
}

fn default_gather_ms() -> u64 {
    2000
}

fn default_sample_cap() -> u64 {
    1000
}

/// `[secagg]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecaggSection {
    /// Fraction of a cohort that may drop out of a round.
    pub dropout: f64,
    /// Fraction that may be corrupt (collude with the server).
    #[serde(default)]
    pub corrupt: f64,
    /// L2 bound of an update and the quantiser's range.
    pub clip_norm: f32,
    /// Longest a SecAgg+ phase may take.
    #[serde(default = "default_phase_ms")]
    pub phase_timeout_ms: u64,
}

impl SecaggSection {
    /// The protocol's threat model for these bounds.
    pub fn threat(&self) -> ThreatModel {
        ThreatModel {
            dropout_ppm: (self.dropout * 1e6).round() as u32,
            corrupt_ppm: (self.corrupt * 1e6).round() as u32,
            ..ThreatModel::default()
        }
    }
}

fn default_phase_ms() -> u64 {
    30_000
}

/// `[server]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// The federation's CA certificate.
    pub ca: PathBuf,
    /// Its revocation list (reloaded when the file changes).
    pub crl: Option<PathBuf>,
    /// The aggregator's certificate.
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
    /// The content-addressed model store: a directory, or an object-store URL
    /// (`s3://bucket/prefix`, `file:///path`, `memory://`).
    pub store: StoreLocation,
    /// TCP address of the HTTP `/metrics` (Prometheus) and `/healthz` endpoints; none if absent.
    pub metrics: Option<SocketAddr>,
}

/// A config error, naming the key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: {cause}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// Not valid TOML for this schema (toml names the key and line).
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
        /// The key, dotted (`cohort.min`).
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl Config {
    /// Reads, parses and validates a config file. Relative paths in `[server]` are resolved
    /// against the file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        let mut config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let s = &mut config.server;
        for p in [&mut s.ca, &mut s.cert, &mut s.key] {
            *p = base.join(&*p);
        }
        if let StoreLocation::Dir(p) = &mut s.store {
            *p = base.join(&*p);
        }
        if let Some(crl) = &mut s.crl {
            *crl = base.join(&*crl);
        }
        if let Some(c) = &mut config.chain {
            c.key = base.join(&c.key);
            c.anchor_queue = base.join(&c.anchor_queue);
        }
        config.validate(path)?;
        Ok(config)
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, reason: String| {
            Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                key,
                reason,
            })
        };
        if self.task.rounds == 0 {
            return invalid("task.rounds", "0 rounds: nothing to do".into());
        }
        if let Err(e) = self.model.layout() {
            return invalid("model", e.to_string());
        }
        if let Some(c) = self.task.classes
            && c != self.model.classes()
        {
            return invalid(
                "task.classes",
                format!("{c}, but the model has {} outputs", self.model.classes()),
            );
        }
        if let Err(e) = self.training.validate() {
            return invalid("training", e.to_string());
        }
        if self.cohort.min < 2 {
            return invalid(
                "cohort.min",
                format!("{}: secure aggregation needs at least 2", self.cohort.min),
            );
        }
        if self.cohort.max < self.cohort.min {
            return invalid(
                "cohort.max",
                format!(
                    "{} is below cohort.min {}",
                    self.cohort.max, self.cohort.min
                ),
            );
        }
        // Every cohort size a round may start with must admit safe SecAgg+ parameters (a
        // cohort that shrinks to an impossible size would otherwise stop the task mid-way).
        if (0.0..0.5).contains(&self.secagg.dropout) && (0.0..0.5).contains(&self.secagg.corrupt) {
            let threat = self.secagg.threat();
            if let Some(n) =
                (self.cohort.min..=self.cohort.max).find(|&n| params::derive(n, &threat).is_err())
            {
                let smallest =
                    (n..n.saturating_add(1000)).find(|&m| params::derive(m, &threat).is_ok());
                return invalid(
                    "cohort.min",
                    format!(
                        "no safe SecAgg+ parameters for a cohort of {n} with secagg.dropout {} and \
                         secagg.corrupt {}{}",
                        self.secagg.dropout,
                        self.secagg.corrupt,
                        smallest.map_or(String::new(), |m| format!(
                            "; the smallest cohort that has them is {m}"
                        ))
                    ),
                );
            }
        }
        if self.cohort.sample_cap == 0 {
            return invalid("cohort.sample_cap", "0".into());
        }
        if !(0.0..0.5).contains(&self.secagg.dropout) {
            return invalid(
                "secagg.dropout",
                format!("{} is not in [0, 0.5)", self.secagg.dropout),
            );
        }
        if !(0.0..0.5).contains(&self.secagg.corrupt) {
            return invalid(
                "secagg.corrupt",
                format!("{} is not in [0, 0.5)", self.secagg.corrupt),
            );
        }
        if !(self.secagg.clip_norm.is_finite() && self.secagg.clip_norm > 0.0) {
            return invalid(
                "secagg.clip_norm",
                format!("{} is not a positive number", self.secagg.clip_norm),
            );
        }
        if self.secagg.phase_timeout_ms == 0 {
            return invalid("secagg.phase_timeout_ms", "0".into());
        }
        if let Some(c) = &self.chain {
            if !c.task.starts_with("0x") || c.task.parse::<alloy::primitives::Address>().is_err() {
                return invalid(
                    "chain.task",
                    format!("{:?} is not an address (0x and 40 hex digits)", c.task),
                );
            }
            if c.confirmations == 0 {
                return invalid("chain.confirmations", "0: at least 1".into());
            }
        }
        if let Some((key, reason)) = self.server_optimizer.invalid() {
            return invalid(key, reason);
        }
        if let Some(n) = &self.normalisation {
            let f = self.model.inputs();
            if n.mean.len() != f || n.std.len() != f {
                return invalid(
                    "normalisation",
                    format!(
                        "{} means and {} stds for {f} features",
                        n.mean.len(),
                        n.std.len()
                    ),
                );
            }
            if n.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
                return invalid(
                    "normalisation.std",
                    "every std must be a positive number".into(),
                );
            }
        }
        Ok(())
    }
}
