//! What the end-to-end tests share: a federation on loopback (a CA, certificates, non-IID
//! partitions of breast_cancer, an aggregator config), agents as in-process tasks, and the
//! bit-exactness check of every round against the clear sum of the revealed inputs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    dead_code,
    unreachable_pub
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flock_agent::data::partition::dirichlet;
use flock_agent::data::{CsvSource, DataSource, Dataset, FeatureMoments, Standardizer, split};
use flock_agent::service::{AgentBuilder, AgentConfig, AgentError, AgentReport};
use flock_agent::train::{TrainDevice, evaluate};
use flock_aggregator::config::Config;
use flock_aggregator::service::{Listening, RoundSummary, ServeReport, serve};
use flock_aggregator::store::ModelStore;
use flock_model::{ModelSpec, Params};
use flock_transport::pki::{Ca, CertKind, Validity};

pub const CLIP: f32 = 2.0;

/// (agent, round, contributed) as the agents' round callbacks saw them.
pub type Seen = Arc<Mutex<Vec<(usize, u64, bool)>>>;

/// Resolves an agent's shutdown future (as SIGTERM would).
pub type Stop = tokio::sync::oneshot::Receiver<()>;

/// A running agent.
pub type AgentTask = tokio::task::JoinHandle<Result<AgentReport, AgentError>>;

pub fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/data/breast_cancer.csv")
}

pub fn timeout() -> Duration {
    Duration::from_secs(
        std::env::var("E2E_TIMEOUT_S")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(600),
    )
}

pub fn floats(v: &[f32]) -> String {
    v.iter()
        .map(|x| format!("{x:e}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A federation on disk: CA, certificates, each device's partition and configs.
pub struct Federation {
    pub root: PathBuf,
    pub agents: usize,
    pub scaler: Standardizer,
    pub tests: Vec<Dataset>,
    /// The task on chain, when the agents take part in one.
    pub chain: Option<ChainSetup>,
}

/// Where the task lives on chain and each agent's account (keys in `keys/`).
#[derive(Clone, Debug)]
pub struct ChainSetup {
    pub rpc: String,
    pub task: String,
    /// Agent i's staking account; its key is `keys/device-{i}.key`.
    pub accounts: Vec<String>,
    pub accept_tolerance: f64,
}

impl Federation {
    pub fn new(name: &str, agents: usize, min: usize, rounds: u64, listen: SocketAddr) -> Self {
        Self::with_alpha(name, agents, min, rounds, listen, 0.5)
    }

    /// [`Federation::new`] with the Dirichlet α of the partitions (0.5 there: strongly non-IID).
    pub fn with_alpha(
        name: &str,
        agents: usize,
        min: usize,
        rounds: u64,
        listen: SocketAddr,
        alpha: f64,
    ) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let root = std::env::temp_dir().join(format!("flock-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();

        let ca = Ca::init(&root.join("ca"), "e2e CA").unwrap();
        let certs = root.join("certs");
        let server = CertKind::Server {
            names: vec!["localhost".into()],
        };
        ca.issue("aggregator", &server, Validity::days(2), &certs)
            .unwrap();
        for i in 0..agents {
            ca.issue(
                &format!("device-{i}"),
                &CertKind::Device,
                Validity::days(2),
                &certs,
            )
            .unwrap();
        }

        // Non-IID partitions; each device holds out 20 % itself; the task's agreed scaling
        // comes from the devices' training moments (what a secure moments round gives).
        let data = CsvSource::new(fixture(), "label").load(2).unwrap();
        let parts = dirichlet(data.labels(), 2, agents, alpha, 25, 11).unwrap();
        let text = std::fs::read_to_string(fixture()).unwrap();
        let header = text.lines().next().unwrap();
        let rows: Vec<&str> = text.lines().skip(1).collect();
        let mut moments: Option<FeatureMoments> = None;
        let mut tests = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let (train, test) = split(&data.select(part), 2, 0.2, 0).unwrap();
            let m = FeatureMoments::of(&train);
            match &mut moments {
                Some(t) => t.merge(&m).unwrap(),
                None => moments = Some(m),
            }
            tests.push(test);
            let dir = root.join(format!("device-{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            let body: Vec<&str> = part.iter().map(|&r| rows[r]).collect();
            std::fs::write(
                dir.join("data.csv"),
                format!("{header}\n{}\n", body.join("\n")),
            )
            .unwrap();
        }
        let scaler = moments.unwrap().standardizer();
        std::fs::write(
            root.join("aggregator.toml"),
            format!(
                r#"
[task]
name = "e2e-{name}"
rounds = {rounds}
seed = 3

[model]
kind = "mlp"
inputs = 30
hidden = [32]
classes = 2

[training]
epochs = 5
batch_size = 16
learning_rate = 0.005

[normalisation]
mean = [{}]
std = [{}]

[cohort]
min = {min}
max = {agents}
gather_ms = 100
sample_cap = 100

[secagg]
dropout = 0.1
clip_norm = {CLIP}
phase_timeout_ms = 20000

[server]
listen = "{listen}"
ca = "ca/ca.pem"
crl = "ca/crl.pem"
cert = "certs/aggregator.pem"
key = "certs/aggregator.key"
store = "store"
metrics = "127.0.0.1:0"
"#,
                floats(&scaler.mean),
                floats(&scaler.std)
            ),
        )
        .unwrap();
        Federation {
            root,
            agents,
            scaler,
            tests,
            chain: None,
        }
    }

    /// Puts the task on chain: the aggregator drives its rounds with `keys/aggregator.key`
    /// (`aggregator_in_chain`: else only the agents take part, and the aggregator runs rounds
    /// off chain), the agents stake with their keys.
    pub fn with_chain(mut self, chain: ChainSetup, aggregator_in_chain: bool) -> Self {
        if aggregator_in_chain {
            self = self.with_section(&format!(
                "[chain]\nrpc = \"{}\"\ntask = \"{}\"\nkey = \"keys/aggregator.key\"\nstart_wait_ms = 60000",
                chain.rpc, chain.task
            ));
        }
        self.chain = Some(chain);
        self
    }

    /// Puts the aggregator's model store at `location` (a path or an object-store URL).
    pub fn with_store(self, location: &str) -> Self {
        let path = self.root.join("aggregator.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.replace("store = \"store\"", &format!("store = \"{location}\""));
        std::fs::write(&path, text).unwrap();
        self
    }

    /// Sets the aggregator's `[server_optimizer]` (a TOML table body).
    pub fn with_server_optimizer(self, table: &str) -> Self {
        self.with_section(&format!("[server_optimizer]\n{table}"))
    }

    /// Appends `section` (a TOML table with its header) to the aggregator's config.
    pub fn with_section(self, section: &str) -> Self {
        let path = self.root.join("aggregator.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{text}\n{section}\n")).unwrap();
        self
    }

    pub fn config(&self) -> Config {
        Config::load(&self.root.join("aggregator.toml")).unwrap()
    }

    /// Starts the aggregator; returns its task and its address once it listens.
    pub async fn serve(
        &self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> (tokio::task::JoinHandle<ServeReport>, SocketAddr) {
        let (task, listening) = self.serve_with_metrics(shutdown).await;
        (task, listening.quic)
    }

    /// Starts the aggregator; returns its task and where it listens (QUIC and metrics).
    pub async fn serve_with_metrics(
        &self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> (tokio::task::JoinHandle<ServeReport>, Listening) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let config = self.config();
        let task = tokio::spawn(async move {
            serve(config, shutdown, move |listening| {
                let _ = tx.send(listening);
            })
            .await
            .unwrap()
        });
        (task, rx.await.unwrap())
    }

    /// Starts every agent against `addr`; `seen` collects (agent, round, contributed).
    pub fn agents(
        &self,
        addr: SocketAddr,
        seen: &Seen,
        hooks: impl Fn(usize, AgentBuilder) -> (AgentBuilder, Option<Stop>),
    ) -> Vec<AgentTask> {
        (0..self.agents)
            .map(|i| self.agent(i, addr, seen, &hooks))
            .collect()
    }

    /// Writes agent `i`'s `agent.toml` (CPU training, aggregator at `addr`); returns its path.
    pub fn agent_config(&self, i: usize, addr: SocketAddr) -> PathBuf {
        let path = self.root.join(format!("device-{i}/agent.toml"));
        std::fs::write(
            &path,
            format!(
                r#"
task = "{}"
[aggregator]
address = "{addr}"
[identity]
ca = "../ca/ca.pem"
cert = "../certs/device-{i}.pem"
key = "../certs/device-{i}.key"
[data]
path = "data.csv"
[agent]
state_dir = "state"
backend = "cpu"
max_backoff_ms = 1000
{}"#,
                self.config().task.name,
                self.chain.as_ref().map_or(String::new(), |c| format!(
                    "[chain]\nrpc = \"{}\"\ntask = \"{}\"\naccount = \"{}\"\nkey = \"../keys/device-{i}.key\"\nstake = \"100\"\naccept_tolerance = {}\npoll_ms = 200\n",
                    c.rpc, c.task, c.accounts[i], c.accept_tolerance
                ))
            ),
        )
        .unwrap();
        path
    }

    /// Starts agent `i` against `addr`.
    pub fn agent(
        &self,
        i: usize,
        addr: SocketAddr,
        seen: &Seen,
        hooks: impl Fn(usize, AgentBuilder) -> (AgentBuilder, Option<Stop>),
    ) -> AgentTask {
        let device = TrainDevice::cpu();
        {
            {
                let config = AgentConfig::load(&self.agent_config(i, addr)).unwrap();
                let seen = seen.clone();
                let builder = AgentBuilder::new(config)
                    .device(device.clone())
                    .on_round(move |r| seen.lock().unwrap().push((i, r.round, r.contributed)));
                let (builder, stop) = hooks(i, builder);
                tokio::spawn(async move {
                    builder
                        .run(async move {
                            match stop {
                                Some(rx) => {
                                    let _ = rx.await;
                                }
                                None => std::future::pending().await,
                            }
                        })
                        .await
                })
            }
        }
    }

    pub fn store(&self) -> ModelStore {
        ModelStore::open_at(&self.config().server.store).unwrap()
    }

    /// The final model's accuracy on every device's held-out split.
    pub fn accuracy(&self, model: &Params) -> f64 {
        let mut values = Vec::new();
        let mut labels = Vec::new();
        for t in &self.tests {
            values.extend_from_slice(t.values());
            labels.extend_from_slice(t.labels());
        }
        let mut pooled = Dataset::new(values, labels, 30).unwrap();
        self.scaler.apply(&mut pooled).unwrap();
        evaluate(&TrainDevice::cpu(), model, &pooled)
            .unwrap()
            .accuracy
    }
}

/// Each round's stored model = the previous one + the FedAvg of the contributors' revealed
/// quantised inputs summed in the clear, bit for bit. Returns the last model.
pub fn check_bit_exact(
    fed: &Federation,
    rounds: &[RoundSummary],
    ids: &[flock_protocol::ClientId],
) -> Params {
    let store = fed.store();
    let optimizer = fed.config().server_optimizer;
    let mut previous = Params::init(&ModelSpec::default_mlp(30, 2), 3).unwrap();
    let mut moments = None;
    // Off chain every round is accepted; on chain a rejected round leaves the model as it was.
    for summary in rounds.iter().filter(|s| s.accepted) {
        let mut sum: Vec<u32> = vec![0; previous.len() + 1];
        for id in &summary.contributors {
            let agent = ids.iter().position(|c| c == id).unwrap();
            for (s, w) in sum
                .iter_mut()
                .zip(revealed(&fed.root, agent, summary.round))
            {
                *s = s.wrapping_add(w);
            }
        }
        let params = edge_kernels::QuantParams::new(summary.bits, CLIP).unwrap();
        let n = summary.contributors.len() as u64;
        let mean = edge_kernels::dequantise_mean(&sum, n, &params).unwrap();
        let bounds = flock_model::contribution::Bounds {
            clip: CLIP,
            sample_cap: 100,
            resolution: params.resolution(),
        };
        let update = flock_model::contribution::decode(&mean, &bounds).unwrap();
        let (expected, next_moments) = optimizer
            .step(&previous, &update, moments.as_ref())
            .unwrap();
        moments = next_moments;
        let stored = store.get(&summary.model).unwrap();
        assert_eq!(
            bits(&stored),
            bits(&expected),
            "round {}: secure ≠ clear",
            summary.round
        );
        previous = stored;
    }
    previous
}

pub fn bits(p: &Params) -> Vec<u32> {
    p.values().iter().map(|x| x.to_bits()).collect()
}

pub fn revealed(root: &Path, agent: usize, round: u64) -> Vec<u32> {
    let path = root.join(format!("device-{agent}/state/revealed/round-{round}.u32"));
    std::fs::read(&path)
        .unwrap()
        .chunks_exact(4)
        .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        .collect()
}

impl Federation {
    /// Agent `i`'s protocol identity (from its certificate's key).
    pub fn client_id(&self, i: usize) -> flock_protocol::ClientId {
        let key = self.root.join(format!("certs/device-{i}.key"));
        let identity = flock_agent::service::load_identity(&key).unwrap();
        flock_protocol::ClientId::from_identity(&identity.public())
    }
}

/// `GET path` over plain HTTP/1.1; returns the status line and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

/// Scrapes `/metrics` until `line` appears (bounded by [`timeout`]); returns the exposition.
pub async fn wait_for_metric(addr: SocketAddr, line: &str) -> String {
    let deadline = tokio::time::Instant::now() + timeout();
    loop {
        let (_, body) = http_get(addr, "/metrics").await;
        if body.lines().any(|l| l == line) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{line:?} never appeared; last scrape:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asks `/healthz` until its JSON contains `needle` (bounded by [`timeout`]).
pub async fn wait_for_health(addr: SocketAddr, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + timeout();
    loop {
        let (_, body) = http_get(addr, "/healthz").await;
        if body.contains(needle) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{needle:?} never appeared; last answer: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (bounded) for the aggregator to finish the task and for every one of `agents` to
/// report it complete, then checks every round bit for bit against the clear sum of the
/// contributors' revealed inputs (any of the federation's agents). Returns the aggregator's
/// report.
pub async fn finish_exact(
    fed: &Federation,
    server: tokio::task::JoinHandle<ServeReport>,
    agents: Vec<AgentTask>,
) -> ServeReport {
    let report = tokio::time::timeout(timeout(), server)
        .await
        .expect("task finished")
        .unwrap();
    for a in agents {
        assert!(a.await.unwrap().unwrap().completed);
    }
    let ids: Vec<_> = (0..fed.agents).map(|i| fed.client_id(i)).collect();
    check_bit_exact(fed, &report.rounds, &ids);
    report
}

/// A loopback address on a UDP port that was free a moment ago, for an aggregator that must be
/// found again at the same address after a restart.
pub fn fixed_loopback_addr() -> SocketAddr {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    ([127, 0, 0, 1], port).into()
}
