//! In-process FedAvg over 5 non-IID clients (Dirichlet α = 0.5), 20 rounds, comes within two
//! points of centralised training on the same samples, on both fixtures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use flock_agent::data::partition::dirichlet;
use flock_agent::data::{Dataset, Standardizer, split};
use flock_agent::train::federation::{SimClient, simulate_fedavg};
use flock_agent::train::{TrainConfig, TrainDevice, evaluate, train_local};
use flock_model::Params;
use support::{Fixture, breast_cancer, digits_cnn};

const CLIENTS: usize = 5;
const ROUNDS: usize = 20;

/// Partitions the fixture, gives each client an 80/20 split of its part, standardised alike
/// from the clients' summed training moments, and returns the clients with the pooled raw
/// training and test samples.
fn clients(fixture: &Fixture, seed: u64) -> (Vec<SimClient>, Dataset, Dataset) {
    let data = fixture.load();
    let parts = dirichlet(data.labels(), fixture.classes, CLIENTS, 0.5, 30, seed).unwrap();
    let splits: Vec<(Dataset, Dataset)> = parts
        .iter()
        .map(|part| split(&data.select(part), fixture.classes, 0.2, seed).unwrap())
        .collect();
    let concat = |sets: Vec<&Dataset>| {
        let values = sets.iter().flat_map(|d| d.values().to_vec()).collect();
        let labels = sets.iter().flat_map(|d| d.labels().to_vec()).collect();
        Dataset::new(values, labels, data.features()).unwrap()
    };
    let pooled_train = concat(splits.iter().map(|(t, _)| t).collect());
    let pooled_test = concat(splits.iter().map(|(_, t)| t).collect());
    (
        SimClient::with_shared_scaling(splits).unwrap(),
        pooled_train,
        pooled_test,
    )
}

fn federated_vs_centralised(fixture: &Fixture) {
    let device = TrainDevice::cpu();
    let (clients, mut pooled_train, mut pooled_test) = clients(fixture, 17);
    let sizes: Vec<usize> = clients.iter().map(|c| c.train.len()).collect();
    let init = Params::init(&fixture.spec, 21).unwrap();
    let local = TrainConfig {
        epochs: 2,
        batch_size: 16,
        learning_rate: 0.003,
        seed: 5,
        ..TrainConfig::default()
    };

    let (_, reports) =
        simulate_fedavg(&device, &init, &clients, ROUNDS, &local, &mut |_| {}).unwrap();
    let federated = reports.last().unwrap().evaluation.accuracy;

    // Centralised: the same training samples pooled, one standardisation, as many sample passes.
    let scaler = Standardizer::fit(&pooled_train);
    scaler.apply(&mut pooled_train).unwrap();
    scaler.apply(&mut pooled_test).unwrap();
    let central_cfg = TrainConfig {
        epochs: ROUNDS * local.epochs,
        ..local.clone()
    };
    let update = train_local(&device, &init, &pooled_train, &central_cfg, &mut |_| {}).unwrap();
    let centralised = evaluate(&device, &update.params, &pooled_test)
        .unwrap()
        .accuracy;

    let curve: Vec<String> = reports
        .iter()
        .map(|r| format!("{:.3}", r.evaluation.accuracy))
        .collect();
    eprintln!(
        "{} {}: {CLIENTS} clients (train sizes {sizes:?}), {ROUNDS} rounds: federated {federated:.4}, \
         centralised {centralised:.4}; per round {curve:?}",
        fixture.name,
        fixture.spec.describe()
    );
    assert_eq!(reports.len(), ROUNDS);
    assert!(
        federated >= centralised - 0.02,
        "{}: federated {federated} vs centralised {centralised}",
        fixture.name
    );
}

#[test]
fn fedavg_non_iid_breast_cancer_matches_centralised() {
    federated_vs_centralised(&breast_cancer());
}

#[test]
fn fedavg_non_iid_digits_matches_centralised() {
    federated_vs_centralised(&digits_cnn());
}
