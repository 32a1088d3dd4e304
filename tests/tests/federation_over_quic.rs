//! A task end to end over real QUIC with mutual TLS on loopback: one aggregator and 8 agents
//! (in-process tasks), each on its own non-IID partition of breast_cancer, 10 rounds of
//! FedAvg under SecAgg+. After every round the stored global model equals, bit for bit, the
//! previous one plus the FedAvg of the same quantised inputs summed in the clear (the agents
//! reveal their inputs through the `test-reveal` feature); the final model reaches 0.95.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use flock_agent::data::partition::dirichlet;
use flock_agent::data::{CsvSource, DataSource, Dataset, FeatureMoments, Standardizer, split};
use flock_agent::service::{AgentBuilder, AgentConfig, AgentState};
use flock_agent::train::{TrainDevice, evaluate};
use flock_aggregator::config::Config;
use flock_aggregator::service::{serve, weighted_update};
use flock_aggregator::store::ModelStore;
use flock_model::ModelId;
use flock_transport::pki::{Ca, CertKind, Validity};

const AGENTS: usize = 8;
const ROUNDS: u64 = 10;
const TIMEOUT_S: u64 = 600;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/data/breast_cancer.csv")
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn floats(v: &[f32]) -> String {
    v.iter()
        .map(|x| format!("{x:e}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_agents_ten_rounds_bit_exact_and_accurate() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    let root = std::env::temp_dir().join(format!("flock-e2e-quic-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();

    // The operator's CA, the aggregator's certificate and one per device.
    let ca = Ca::init(&root.join("ca"), "e2e CA").unwrap();
    let certs = root.join("certs");
    ca.issue(
        "aggregator",
        &CertKind::Server {
            names: vec!["localhost".into()],
        },
        Validity::days(2),
        &certs,
    )
    .unwrap();
    for i in 0..AGENTS {
        ca.issue(
            &format!("device-{i}"),
            &CertKind::Device,
            Validity::days(2),
            &certs,
        )
        .unwrap();
    }

    // Non-IID partitions; a held-out test split per device; the task's agreed scaling from the
    // devices' training moments (what a secure moments round would give).
    let data = CsvSource::new(fixture(), "label").load(2).unwrap();
    let parts = dirichlet(data.labels(), 2, AGENTS, 0.5, 25, 11).unwrap();
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
        // The agent's own file: its whole partition (it splits off the same 20 % itself).
        let dir = root.join(format!("device-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let header = std::fs::read_to_string(fixture())
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_string();
        let rows: Vec<String> = std::fs::read_to_string(fixture())
            .unwrap()
            .lines()
            .skip(1)
            .map(str::to_string)
            .collect();
        let body: Vec<&str> = part.iter().map(|&r| rows[r].as_str()).collect();
        write(
            &dir.join("data.csv"),
            &format!("{header}\n{}\n", body.join("\n")),
        );
    }
    let scaler: Standardizer = moments.unwrap().standardizer();

    write(
        &root.join("aggregator.toml"),
        &format!(
            r#"
[task]
name = "e2e-breast-cancer"
rounds = {ROUNDS}
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
min = {AGENTS}
max = {AGENTS}
gather_ms = 100
sample_cap = 100

[secagg]
dropout = 0.1
clip_norm = 2.0
phase_timeout_ms = 20000

[server]
listen = "127.0.0.1:0"
ca = "ca/ca.pem"
crl = "ca/crl.pem"
cert = "certs/aggregator.pem"
key = "certs/aggregator.key"
store = "store"
"#,
            floats(&scaler.mean),
            floats(&scaler.std)
        ),
    );
    let config = Config::load(&root.join("aggregator.toml")).unwrap();
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(serve(config, std::future::pending(), move |addr| {
        let _ = addr_tx.send(addr);
    }));
    let addr = addr_rx.await.unwrap();

    let device = TrainDevice::cpu();
    let mut agents = Vec::new();
    let rounds_seen = Arc::new(Mutex::new(Vec::new()));
    for i in 0..AGENTS {
        let dir = root.join(format!("device-{i}"));
        write(
            &dir.join("agent.toml"),
            &format!(
                r#"
task = "e2e-breast-cancer"
[aggregator]
address = "{addr}"
server_name = "localhost"
[identity]
ca = "../ca/ca.pem"
cert = "../certs/device-{i}.pem"
key = "../certs/device-{i}.key"
[data]
path = "data.csv"
label = "label"
[agent]
state_dir = "state"
"#
            ),
        );
        let config = AgentConfig::load(&dir.join("agent.toml")).unwrap();
        let seen = rounds_seen.clone();
        let builder = AgentBuilder::new(config)
            .device(device.clone())
            .on_round(move |r| seen.lock().unwrap().push((i, r.round, r.contributed)));
        agents.push(tokio::spawn(builder.run(std::future::pending())));
    }
    let report = tokio::time::timeout(
        std::time::Duration::from_secs(
            std::env::var("E2E_TIMEOUT_S")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(TIMEOUT_S),
        ),
        server,
    )
    .await
    .expect("the task finishes within 10 minutes")
    .unwrap()
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

    // Bit for bit: each round's model = previous + FedAvg of the revealed quantised inputs.
    let store = ModelStore::open(&root.join("store")).unwrap();
    let init = flock_model::Params::init(&flock_model::ModelSpec::default_mlp(30, 2), 3).unwrap();
    let mut previous = init;
    for summary in &report.rounds {
        assert_eq!(
            summary.contributors.len(),
            AGENTS,
            "round {}: everyone contributes",
            summary.round
        );
        let mut sum: Vec<u32> = vec![0; previous.len() + 1];
        for id in &summary.contributors {
            let i = ids.iter().position(|c| c == id).unwrap();
            let path = root.join(format!(
                "device-{i}/state/revealed/round-{}.u32",
                summary.round
            ));
            let bytes = std::fs::read(&path).unwrap();
            for (s, w) in sum.iter_mut().zip(bytes.chunks_exact(4)) {
                *s = s.wrapping_add(u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
            }
        }
        let params = edge_kernels::QuantParams::new(summary.bits, 2.0).unwrap();
        let mean = edge_kernels::dequantise_mean(&sum, AGENTS as u64, &params).unwrap();
        let update = weighted_update(&mean, 2.0).unwrap();
        let expected = previous.with_update(&update, 1.0).unwrap();
        let stored = store.get(&summary.model).unwrap();
        let b =
            |p: &flock_model::Params| p.values().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            b(&stored),
            b(&expected),
            "round {}: secure result differs from the clear one",
            summary.round
        );
        previous = stored;
    }

    // Every agent saw every round, and the final model is accurate on the devices' test data.
    assert_eq!(rounds_seen.lock().unwrap().len(), AGENTS * ROUNDS as usize);
    let last: ModelId = report.state.model;
    let final_model = store.get(&last).unwrap();
    let mut pooled_values = Vec::new();
    let mut pooled_labels = Vec::new();
    for t in &tests {
        pooled_values.extend_from_slice(t.values());
        pooled_labels.extend_from_slice(t.labels());
    }
    let mut pooled = Dataset::new(pooled_values, pooled_labels, 30).unwrap();
    scaler.apply(&mut pooled).unwrap();
    let eval = evaluate(&TrainDevice::cpu(), &final_model, &pooled).unwrap();
    eprintln!(
        "final accuracy over the devices' test splits: {:.4} ({} samples)",
        eval.accuracy, eval.samples
    );
    assert!(eval.accuracy >= 0.95, "{}", eval.accuracy);
    let state = AgentState::load(&root.join("device-0/state")).unwrap();
    assert_eq!(state.model.as_deref(), Some(last.to_string().as_str()));
}
