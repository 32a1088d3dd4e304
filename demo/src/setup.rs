//! The run directory, everything in it before a process starts: the federation's CA and
//! certificates (`ca/`, `certs/`: the aggregator's server certificate for `localhost`, one
//! device certificate per agent), each agent's non-IID share of the data
//! (`device-i/data.csv`), the task's shared feature scaling (the merged `FeatureMoments` of
//! the agents' training splits), the pooled training and held-out sets (the baseline's and the
//! report's), and the configs (`aggregator.toml`, `device-i/agent.toml`) on free loopback
//! ports. The chain's keys (`keys/`) are written by [`crate::chain`].
//!
//! Modelled on the end-to-end tests' `Federation::new`, with the same library calls.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};

use alloy::primitives::Address;
use anyhow::{Context, bail};
use flock_agent::data::partition::write_partitions;
use flock_agent::data::{CsvSource, DataSource, Dataset, FeatureMoments, Standardizer, split};
use flock_agent::service::AgentConfig;
use flock_agent::train::BackendChoice;
use flock_aggregator::config::Config;
use flock_model::ModelSpec;
use flock_transport::pki::{Ca, CertKind, Validity};

use crate::dataset::{DataChoice, Loaded};

/// Share of each agent's data it holds out itself (`[data] val_fraction`).
pub(crate) const VAL_FRACTION: f64 = 0.2;
/// The seed of the agents' train/held-out split (fixed in the agent's `prepare`).
pub(crate) const SPLIT_SEED: u64 = 0;
/// FLOCK each agent stakes.
pub(crate) const STAKE_FLOCK: u64 = 100;
/// A voter accepts unless the candidate loses more accuracy than this on its data.
const ACCEPT_TOLERANCE: f64 = 0.05;
/// Fewest samples a Dirichlet share may hold (fewer on small files).
const MIN_SHARE: usize = 25;

/// What [`prepare`] made.
pub(crate) struct Prepared {
    /// The run directory.
    pub(crate) root: PathBuf,
    /// Number of agents.
    pub(crate) agents: usize,
    /// The task's name (the aggregator's and the agents').
    pub(crate) task_name: String,
    /// The model every agent trains.
    pub(crate) spec: ModelSpec,
    /// The label column of the agents' files (the partitions keep the source's header).
    pub(crate) label: String,
    /// The task's feature scaling.
    pub(crate) scaler: Standardizer,
    /// The agents' training splits together, scaled.
    pub(crate) pooled_train: Dataset,
    /// The agents' held-out splits together, scaled: every accuracy of the report.
    pub(crate) pooled_test: Dataset,
}

/// The task on chain as the configs name it.
pub(crate) struct ChainRefs<'a> {
    /// JSON-RPC endpoint.
    pub(crate) rpc: &'a str,
    /// The task contract.
    pub(crate) task: Address,
    /// Agent i's staking account (its key: `keys/device-i.key`).
    pub(crate) accounts: &'a [Address],
}

/// The configs written by [`write_configs`].
pub(crate) struct Configs {
    /// `aggregator.toml`.
    pub(crate) aggregator: PathBuf,
    /// Its contents, as the aggregator reads them.
    pub(crate) config: Config,
    /// `device-i/agent.toml`.
    pub(crate) agents: Vec<PathBuf>,
}

/// The name of agent `i` (its directory is `device-i`, its log `logs/agent-i.log`).
pub(crate) fn agent_name(i: usize) -> String {
    format!("agent-{i}")
}

/// Creates the run directory with the CA, the certificates and each agent's data share, and
/// computes the task's scaling and the pooled sets.
pub(crate) fn prepare(
    root: &Path,
    agents: usize,
    choice: &DataChoice,
    loaded: &Loaded,
    alpha: f64,
    seed: u64,
) -> anyhow::Result<Prepared> {
    std::fs::create_dir_all(root.join("logs"))
        .with_context(|| format!("creating {}", root.display()))?;
    issue_certificates(root, agents)?;

    let classes = loaded.classes;
    let min_share = MIN_SHARE.min(loaded.data.len() / (2 * agents)).max(1);
    let shares = root.join("partitions");
    let source = CsvSource::new(&choice.path, &choice.label);
    let files = write_partitions(&source, classes, agents, alpha, min_share, seed, &shares)
        .with_context(|| format!("splitting {} over {agents} agents", choice.path.display()))?;
    let mut moments: Option<FeatureMoments> = None;
    let (mut trains, mut tests) = (Vec::new(), Vec::new());
    for (i, file) in files.iter().enumerate() {
        let dir = root.join(format!("device-{i}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let data_csv = dir.join("data.csv");
        std::fs::rename(&file.path, &data_csv)
            .with_context(|| format!("moving {} into {}", file.path.display(), dir.display()))?;
        // Exactly what the agent will do with the file (`prepare` in its session).
        let data = CsvSource::new(&data_csv, &choice.label).load(classes)?;
        let (train, test) = split(&data, classes, VAL_FRACTION, SPLIT_SEED)?;
        let m = FeatureMoments::of(&train);
        match &mut moments {
            Some(total) => total.merge(&m)?,
            None => moments = Some(m),
        }
        trains.push(train);
        tests.push(test);
    }
    let _ = std::fs::remove_dir(&shares);
    let Some(moments) = moments else {
        bail!("no agent got any data");
    };
    let scaler = moments.standardizer();
    let features = loaded.data.features();
    let mut pooled_train = pool(&trains, features)?;
    let mut pooled_test = pool(&tests, features)?;
    scaler.apply(&mut pooled_train)?;
    scaler.apply(&mut pooled_test)?;
    if pooled_test.is_empty() {
        bail!("the agents hold out no samples: too little data to measure accuracy");
    }
    Ok(Prepared {
        root: root.to_path_buf(),
        agents,
        task_name: format!("flock-demo-{}", choice.name),
        spec: ModelSpec::default_mlp(features, classes),
        label: choice.label.clone(),
        scaler,
        pooled_train,
        pooled_test,
    })
}

/// `ca/` (with its CRL), `certs/aggregator.*` for `localhost`, `certs/device-i.*`.
fn issue_certificates(root: &Path, agents: usize) -> anyhow::Result<()> {
    let ca = Ca::init(&root.join("ca"), "flock-demo CA")?;
    let certs = root.join("certs");
    let server = CertKind::Server {
        names: vec!["localhost".into()],
    };
    ca.issue("aggregator", &server, Validity::days(2), &certs)?;
    for i in 0..agents {
        let name = format!("device-{i}");
        ca.issue(&name, &CertKind::Device, Validity::days(2), &certs)?;
    }
    Ok(())
}

/// The samples of `parts` in one data set.
fn pool(parts: &[Dataset], features: usize) -> anyhow::Result<Dataset> {
    let mut values = Vec::new();
    let mut labels = Vec::new();
    for p in parts {
        values.extend_from_slice(p.values());
        labels.extend_from_slice(p.labels());
    }
    Dataset::new(values, labels, features).context("pooling the agents' samples")
}

/// Writes `aggregator.toml` and every `device-i/agent.toml` and reads them back as the
/// services will (so a bad value fails here, naming the key).
pub(crate) fn write_configs(
    prep: &Prepared,
    chain: &ChainRefs<'_>,
    rounds: u32,
    seed: u64,
    backend: BackendChoice,
) -> anyhow::Result<Configs> {
    let root = &prep.root;
    let quic = free_udp_port()?;
    let metrics = free_tcp_port()?;
    let aggregator = root.join("aggregator.toml");
    let text = aggregator_toml(prep, chain, rounds, seed, quic, metrics)?;
    std::fs::write(&aggregator, text)
        .with_context(|| format!("writing {}", aggregator.display()))?;
    let config = Config::load(&aggregator)?;
    if config.model != prep.spec {
        bail!(
            "{}: [model] does not read back as written",
            aggregator.display()
        );
    }
    let mut agents = Vec::with_capacity(prep.agents);
    for (i, account) in chain.accounts.iter().enumerate() {
        let path = root.join(format!("device-{i}/agent.toml"));
        let text = agent_toml(prep, chain, i, *account, quic, backend);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        AgentConfig::load(&path)?;
        agents.push(path);
    }
    Ok(Configs {
        aggregator,
        config,
        agents,
    })
}

fn aggregator_toml(
    prep: &Prepared,
    chain: &ChainRefs<'_>,
    rounds: u32,
    seed: u64,
    quic: SocketAddr,
    metrics: SocketAddr,
) -> anyhow::Result<String> {
    let ModelSpec::Mlp {
        inputs,
        hidden,
        classes,
    } = &prep.spec
    else {
        bail!("the demo trains MLPs only");
    };
    let hidden: Vec<String> = hidden.iter().map(ToString::to_string).collect();
    let mut t = String::new();
    let _ = writeln!(t, "# Written by flock-demo.\n[task]");
    let _ = writeln!(t, "name = {}", quoted(&prep.task_name));
    let _ = writeln!(t, "rounds = {rounds}\nseed = {seed}\nclasses = {classes}\n");
    let _ = writeln!(t, "[model]\nkind = \"mlp\"\ninputs = {inputs}");
    let _ = writeln!(t, "hidden = [{}]\nclasses = {classes}\n", hidden.join(", "));
    let _ = writeln!(
        t,
        "[training]\nepochs = 5\nbatch_size = 16\nlearning_rate = 0.005\nseed = {seed}\n"
    );
    let _ = writeln!(t, "[normalisation]\nmean = [{}]", floats(&prep.scaler.mean));
    let _ = writeln!(t, "std = [{}]\n", floats(&prep.scaler.std));
    let _ = writeln!(
        t,
        "[cohort]\nmin = {}\nmax = {}\ngather_ms = 100\nsample_cap = 100\n",
        crate::cli::MIN_PROPOSERS,
        prep.agents
    );
    let _ = writeln!(
        t,
        "[secagg]\ndropout = 0.1\nclip_norm = 2.0\nphase_timeout_ms = 20000\n"
    );
    let _ = writeln!(
        t,
        "[server]\nlisten = \"{quic}\"\nca = \"ca/ca.pem\"\ncrl = \"ca/crl.pem\"\n\
         cert = \"certs/aggregator.pem\"\nkey = \"certs/aggregator.key\"\nstore = \"store\"\n\
         metrics = \"{metrics}\"\n"
    );
    let _ = writeln!(
        t,
        "[chain]\nrpc = {}\ntask = \"{}\"\nkey = \"keys/aggregator.key\"\nconfirmations = 1\n\
         anchor_queue = \"anchors\"\nstart_wait_ms = 20000",
        quoted(chain.rpc),
        chain.task
    );
    Ok(t)
}

fn agent_toml(
    prep: &Prepared,
    chain: &ChainRefs<'_>,
    i: usize,
    account: Address,
    quic: SocketAddr,
    backend: BackendChoice,
) -> String {
    let backend = match backend {
        BackendChoice::Auto => "auto",
        BackendChoice::Cpu => "cpu",
        BackendChoice::Gpu => "gpu",
    };
    format!(
        "# Written by flock-demo.\ntask = {task}\n\n\
         [aggregator]\naddress = \"{quic}\"\nserver_name = \"localhost\"\n\n\
         [identity]\nca = \"../ca/ca.pem\"\ncert = \"../certs/device-{i}.pem\"\n\
         key = \"../certs/device-{i}.key\"\n\n\
         [data]\npath = \"data.csv\"\nlabel = {label}\nval_fraction = {VAL_FRACTION}\n\n\
         [agent]\nstate_dir = \"state\"\nbackend = \"{backend}\"\nmax_backoff_ms = 1000\n\n\
         [chain]\nrpc = {rpc}\ntask = \"{ctask}\"\naccount = \"{account}\"\n\
         key = \"../keys/device-{i}.key\"\nstake = \"{STAKE_FLOCK}\"\n\
         accept_tolerance = {ACCEPT_TOLERANCE}\npoll_ms = 250\n",
        task = quoted(&prep.task_name),
        label = quoted(&prep.label),
        rpc = quoted(chain.rpc),
        ctask = chain.task,
    )
}

/// A TOML basic string (JSON's escapes are TOML's).
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

/// Floats as TOML (exponent notation, exact for f32).
fn floats(v: &[f32]) -> String {
    v.iter()
        .map(|x| format!("{x:e}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A loopback UDP address that was free a moment ago (the aggregator's QUIC port).
fn free_udp_port() -> anyhow::Result<SocketAddr> {
    let socket = UdpSocket::bind("127.0.0.1:0").context("finding a free UDP port")?;
    Ok(socket.local_addr()?)
}

/// A loopback TCP address that was free a moment ago (the aggregator's metrics).
fn free_tcp_port() -> anyhow::Result<SocketAddr> {
    let socket = TcpListener::bind("127.0.0.1:0").context("finding a free TCP port")?;
    Ok(socket.local_addr()?)
}
