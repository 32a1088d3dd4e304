//! Tasks end to end over real QUIC with mutual TLS on loopback: one aggregator and several
//! agents (in-process tasks), each on its own non-IID partition of breast_cancer.
//!
//! - 8 agents × 10 rounds: after every round the stored global model equals, bit for bit, the
//!   previous one plus the FedAvg of the same quantised inputs summed in the clear (the agents
//!   reveal their inputs through the `test-hooks` feature); the final model reaches 0.95.
//! - The aggregator killed between rounds and started again continues from its store with the
//!   next round: no round lost or repeated, and the agents reconnect by themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flock_agent::data::partition::dirichlet;
use flock_agent::data::{CsvSource, DataSource, Dataset, FeatureMoments, Standardizer, split};
use flock_agent::service::{AgentBuilder, AgentConfig, AgentError, AgentReport, AgentState};
use flock_agent::train::{TrainDevice, evaluate};
use flock_aggregator::config::Config;
use flock_aggregator::service::{ServeReport, serve, weighted_update};
use flock_aggregator::store::ModelStore;
use flock_model::{ModelSpec, Params};
use flock_transport::pki::{Ca, CertKind, Validity};

const CLIP: f32 = 2.0;

/// (agent, round, contributed) as the agents' round callbacks saw them.
type Seen = Arc<Mutex<Vec<(usize, u64, bool)>>>;

/// Resolves an agent's shutdown future (as SIGTERM would).
type Stop = tokio::sync::oneshot::Receiver<()>;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/data/breast_cancer.csv")
}

fn timeout() -> Duration {
    Duration::from_secs(
        std::env::var("E2E_TIMEOUT_S")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(600),
    )
}

fn floats(v: &[f32]) -> String {
    v.iter()
        .map(|x| format!("{x:e}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A federation on disk: CA, certificates, each device's partition and configs.
struct Federation {
    root: PathBuf,
    agents: usize,
    scaler: Standardizer,
    tests: Vec<Dataset>,
}

impl Federation {
    fn new(name: &str, agents: usize, min: usize, rounds: u64, listen: SocketAddr) -> Self {
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
        let parts = dirichlet(data.labels(), 2, agents, 0.5, 25, 11).unwrap();
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
        }
    }

    fn config(&self) -> Config {
        Config::load(&self.root.join("aggregator.toml")).unwrap()
    }

    /// Starts the aggregator; returns its task and its address once it listens.
    async fn serve(
        &self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> (tokio::task::JoinHandle<ServeReport>, SocketAddr) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let config = self.config();
        let task = tokio::spawn(async move {
            serve(config, shutdown, move |addr| {
                let _ = tx.send(addr);
            })
            .await
            .unwrap()
        });
        (task, rx.await.unwrap())
    }

    /// Starts every agent against `addr`; `seen` collects (agent, round, contributed).
    fn agents(
        &self,
        addr: SocketAddr,
        seen: &Seen,
        hooks: impl Fn(usize, AgentBuilder) -> (AgentBuilder, Option<Stop>),
    ) -> Vec<tokio::task::JoinHandle<Result<AgentReport, AgentError>>> {
        let device = TrainDevice::cpu();
        (0..self.agents)
            .map(|i| {
                let dir = self.root.join(format!("device-{i}"));
                std::fs::write(
                    dir.join("agent.toml"),
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
max_backoff_ms = 1000
"#,
                        self.config().task.name
                    ),
                )
                .unwrap();
                let config = AgentConfig::load(&dir.join("agent.toml")).unwrap();
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
            })
            .collect()
    }

    fn store(&self) -> ModelStore {
        ModelStore::open(&self.root.join("store")).unwrap()
    }

    /// The final model's accuracy on every device's held-out split.
    fn accuracy(&self, model: &Params) -> f64 {
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
fn check_bit_exact(
    fed: &Federation,
    report: &ServeReport,
    ids: &[flock_protocol::ClientId],
) -> Params {
    let store = fed.store();
    let mut previous = Params::init(&ModelSpec::default_mlp(30, 2), 3).unwrap();
    for summary in &report.rounds {
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
        let expected = previous
            .with_update(&weighted_update(&mean, CLIP).unwrap(), 1.0)
            .unwrap();
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

fn bits(p: &Params) -> Vec<u32> {
    p.values().iter().map(|x| x.to_bits()).collect()
}

fn revealed(root: &Path, agent: usize, round: u64) -> Vec<u32> {
    let path = root.join(format!("device-{agent}/state/revealed/round-{round}.u32"));
    std::fs::read(&path)
        .unwrap()
        .chunks_exact(4)
        .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_agents_ten_rounds_bit_exact_and_accurate() {
    const AGENTS: usize = 8;
    const ROUNDS: u64 = 10;
    let fed = Federation::new(
        "bitexact",
        AGENTS,
        AGENTS,
        ROUNDS,
        ([127, 0, 0, 1], 0).into(),
    );
    let (server, addr) = fed.serve(std::future::pending()).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let agents = fed.agents(addr, &seen, |_, b| (b, None));
    let report = tokio::time::timeout(timeout(), server)
        .await
        .expect("task finished")
        .unwrap();
    let mut ids = Vec::new();
    for a in agents {
        let r = a.await.unwrap().unwrap();
        assert!(r.completed);
        assert_eq!(r.state.last_round, Some(ROUNDS));
        ids.push(r.client);
    }
    assert_eq!(report.rounds.len() as u64, ROUNDS);
    assert_eq!(report.state.round, ROUNDS);
    assert_eq!(
        seen.lock().unwrap().len(),
        AGENTS * ROUNDS as usize,
        "every agent saw every round"
    );

    let previous = check_bit_exact(&fed, &report, &ids);
    let accuracy = fed.accuracy(&previous);
    eprintln!("final accuracy over the devices' test splits: {accuracy:.4}");
    assert!(accuracy >= 0.95, "{accuracy}");
    let state = AgentState::load(&fed.root.join("device-0/state")).unwrap();
    assert_eq!(state.model, Some(report.state.model.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_aggregator_continues_with_the_next_round() {
    const AGENTS: usize = 4;
    const ROUNDS: u64 = 6;
    // A fixed port, so that the agents find the restarted aggregator where they left it.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let fed = Federation::new(
        "restart",
        AGENTS,
        AGENTS,
        ROUNDS,
        ([127, 0, 0, 1], port).into(),
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (first, addr) = fed
        .serve(async move {
            let _ = stop_rx.await;
        })
        .await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let agents = fed.agents(addr, &seen, |_, b| (b, None));

    // Kill it once round 2 is in the store.
    let store = fed.store();
    tokio::time::timeout(timeout(), async {
        while store
            .state("e2e-restart")
            .unwrap()
            .is_none_or(|s| s.round < 2)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    let _ = stop_tx.send(());
    let first = first.await.unwrap();
    let stopped_at = first.state.round;
    assert!(
        (2..ROUNDS).contains(&stopped_at),
        "stopped after round {stopped_at}"
    );

    // The killed aggregator's socket closes once its last connection task has let go.
    tokio::time::timeout(timeout(), async {
        while std::net::UdpSocket::bind(addr).is_err() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    let (second, _) = fed.serve(std::future::pending()).await;
    let second = tokio::time::timeout(timeout(), second)
        .await
        .expect("finished")
        .unwrap();
    for a in agents {
        let r = a.await.unwrap().unwrap();
        assert!(r.completed);
        assert_eq!(r.state.last_round, Some(ROUNDS));
    }
    let rounds: Vec<u64> = first
        .rounds
        .iter()
        .chain(&second.rounds)
        .map(|r| r.round)
        .collect();
    assert_eq!(
        rounds,
        (1..=ROUNDS).collect::<Vec<_>>(),
        "no round lost or repeated"
    );
    assert_eq!(second.rounds[0].round, stopped_at + 1);
    // Every round's model is in the store and chains from the one before.
    for r in first.rounds.iter().chain(&second.rounds) {
        store.get(&r.model).unwrap();
    }
    assert_eq!(second.state.round, ROUNDS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agents_vanishing_at_each_phase_leave_exact_rounds() {
    use flock_protocol::ClientPhase::{
        AwaitingAdverts, AwaitingResult, AwaitingShares, AwaitingUnmaskRequest,
    };
    const AGENTS: usize = 8;
    const ROUNDS: u64 = 5;
    let fed = Federation::new("dropouts", AGENTS, 4, ROUNDS, ([127, 0, 0, 1], 0).into());
    let (server, addr) = fed.serve(std::future::pending()).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    // Agent i vanishes in round i + 1, each at another phase; agents 4..8 stay.
    let plan = [
        (1, AwaitingAdverts),
        (2, AwaitingShares),
        (3, AwaitingUnmaskRequest),
        (4, AwaitingResult),
    ];
    let agents = fed.agents(addr, &seen, |i, b| match plan.get(i) {
        Some(&(round, phase)) => (b.vanish_at(round, phase), None),
        None => (b, None),
    });
    let report = tokio::time::timeout(timeout(), server)
        .await
        .expect("task finished")
        .unwrap();
    let mut ids = Vec::new();
    for (i, a) in agents.into_iter().enumerate() {
        match a.await.unwrap() {
            Ok(r) => {
                assert!(i >= plan.len(), "agent {i} should have vanished");
                assert!(r.completed);
                ids.push(r.client);
            }
            Err(e) => {
                assert!(i < plan.len(), "agent {i}: {e}");
                assert!(
                    e.to_string()
                        .contains(&format!("vanished in round {}", plan[i].0)),
                    "{e}"
                );
                let key = fed.root.join(format!("certs/device-{i}.key"));
                let identity = flock_agent::service::load_identity(&key).unwrap();
                ids.push(flock_protocol::ClientId::from_identity(&identity.public()));
            }
        }
    }
    // Who is in each round's sum: gone before its masked input, out; gone after, in (its self
    // mask is rebuilt from its neighbours' shares).
    let contributors: Vec<usize> = report.rounds.iter().map(|r| r.contributors.len()).collect();
    assert_eq!(contributors, [7, 6, 6, 5, 4], "per round");
    let dropped_after_input = ids[2];
    assert!(report.rounds[2].contributors.contains(&dropped_after_input));
    assert!(!report.rounds[0].contributors.contains(&ids[0]));
    check_bit_exact(&fed, &report, &ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_shut_down_leaves_and_is_not_counted_on() {
    const AGENTS: usize = 5;
    const ROUNDS: u64 = 3;
    let fed = Federation::new("leave", AGENTS, 4, ROUNDS, ([127, 0, 0, 1], 0).into());
    let (server, addr) = fed.serve(std::future::pending()).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let stop_tx = Mutex::new(Some(stop_tx));
    let stop_rx = Mutex::new(Some(stop_rx));
    // Agent 0 is shut down (as by SIGTERM) once it has seen round 1 finish.
    let agents = fed.agents(addr, &seen, |i, b| {
        if i != 0 {
            return (b, None);
        }
        let stop_tx = Mutex::new(stop_tx.lock().unwrap().take());
        let rx = stop_rx.lock().unwrap().take();
        let b = b.on_round(move |_| {
            if let Some(tx) = stop_tx.lock().unwrap().take() {
                let _ = tx.send(());
            }
        });
        (b, rx)
    });
    let report = tokio::time::timeout(timeout(), server)
        .await
        .expect("task finished")
        .unwrap();
    let mut results = Vec::new();
    for a in agents {
        results.push(a.await.unwrap().unwrap());
    }
    assert!(!results[0].completed, "agent 0 left");
    assert!(results[1..].iter().all(|r| r.completed));
    let participants: Vec<usize> = report.rounds.iter().map(|r| r.participants).collect();
    // Round 2 may already have started with it when it leaves (the round goes on without it);
    // after its goodbye the last round starts without it, instead of counting on a silent peer
    // until the idle timeout.
    assert_eq!(participants[0], 5);
    assert_eq!(participants[2], 4, "{participants:?}");
    let gone = results[0].client;
    assert!(
        report.rounds[1..]
            .iter()
            .all(|r| !r.contributors.contains(&gone))
    );
}
