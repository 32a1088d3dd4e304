//! Local training: from the global model, a few epochs of mini-batch SGD or Adam on the local
//! data, optionally with the FedProx proximal term, and the update `Δ = w_local − w_global`.
//!
//! Deterministic for a given seed on the CPU backend: the model starts from the given
//! parameters (never burn's RNG) and batches are drawn from a ChaCha20 stream.

use std::time::{Duration, Instant};

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::{Int, Tensor, TensorData};
use flock_model::Params;
use flock_model::task::{OptimizerKind, TrainConfig};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

use super::net::Net;
use super::{TrainDevice, TrainError};
use crate::data::{DataError, Dataset};

/// What one epoch did.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochReport {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Epochs in this run.
    pub epochs: usize,
    /// Mean training loss over the epoch (FedProx term included).
    pub loss: f64,
    /// Samples trained on.
    pub samples: usize,
    /// Wall time of the epoch.
    pub elapsed: Duration,
}

/// The result of local training.
#[derive(Clone, Debug)]
pub struct LocalUpdate {
    /// The locally trained parameters.
    pub params: Params,
    /// `params − global`, in layout order: what is clipped, quantised and masked.
    pub delta: Vec<f32>,
    /// Samples trained on (the FedAvg weight).
    pub samples: u64,
    /// One report per epoch.
    pub epochs: Vec<EpochReport>,
}

/// Checks that `data` fits `params`' model.
pub(crate) fn check_features(params: &Params, data: &Dataset) -> Result<(), TrainError> {
    let expected = params.spec().inputs();
    if data.features() != expected {
        return Err(DataError::FeatureCount {
            origin: "training data".into(),
            expected,
            got: data.features(),
        }
        .into());
    }
    Ok(())
}

/// `data`'s features `[n, f]` and labels `[n]` as tensors on `device`.
pub(crate) fn upload(data: &Dataset, device: &burn::tensor::Device) -> (Tensor<2>, Tensor<1, Int>) {
    let x = Tensor::from_data(
        TensorData::new(data.values().to_vec(), [data.len(), data.features()]),
        device,
    );
    let labels: Vec<i64> = data.labels().iter().map(|&l| i64::from(l)).collect();
    let y = Tensor::from_data(TensorData::new(labels, [data.len()]), device);
    (x, y)
}

/// Reads a scalar tensor back.
pub(crate) fn scalar(t: Tensor<1>) -> Result<f64, TrainError> {
    t.into_data()
        .convert::<f64>()
        .try_into_vec::<f64>()
        .map_err(|e| TrainError::Backend(format!("reading a scalar back: {e:?}")))?
        .first()
        .copied()
        .ok_or_else(|| TrainError::Backend("empty scalar".into()))
}

/// Trains from `global` on `data` as `config` says; `on_epoch` sees each epoch's report.
pub fn train_local(
    device: &TrainDevice,
    global: &Params,
    data: &Dataset,
    config: &TrainConfig,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<LocalUpdate, TrainError> {
    config
        .validate()
        .map_err(|e| TrainError::Config(e.to_string()))?;
    check_features(global, data)?;
    if data.is_empty() {
        return Err(TrainError::Config("no training samples".into()));
    }
    let ad = device.device().clone().autodiff();
    let mut model = Net::from_params(global, &ad)?;
    let mut optimizer: ModuleOptimizer = match config.optimizer {
        OptimizerKind::Adam => AdamConfig::new().init(),
        OptimizerKind::Sgd { momentum } => {
            let momentum = (momentum > 0.0).then(|| {
                MomentumConfig::new()
                    .with_momentum(momentum)
                    .with_dampening(0.0)
            });
            SgdConfig::new().with_momentum(momentum).init()
        }
    };
    let (x_all, y_all) = upload(data, &ad);
    let global_flat = (config.prox_mu > 0.0).then(|| {
        Tensor::<1>::from_data(
            TensorData::new(global.values().to_vec(), [global.len()]),
            &ad,
        )
    });
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let mut rng = ChaCha20Rng::seed_from_u64(config.seed);
    let mut order: Vec<usize> = (0..data.len()).collect();
    let mut reports = Vec::with_capacity(config.epochs);

    for epoch in 1..=config.epochs {
        let start = Instant::now();
        order.shuffle(&mut rng);
        let mut loss_sum = Tensor::<1>::zeros([1], &ad);
        for batch in order.chunks(config.batch_size) {
            let indices: Vec<i64> = batch.iter().map(|&i| i as i64).collect();
            let idx = Tensor::<1, Int>::from_data(TensorData::new(indices, [batch.len()]), &ad);
            let x = x_all.clone().select(0, idx.clone());
            let y = y_all.clone().select(0, idx);
            let mut loss = loss_fn.forward(model.forward(x), y);
            if let Some(w0) = &global_flat {
                let prox = (model.flat() - w0.clone()).square().sum();
                loss = loss + prox.mul_scalar(config.prox_mu / 2.0);
            }
            loss_sum = loss_sum + loss.clone().detach().mul_scalar(batch.len() as f64);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(config.learning_rate, model, grads);
        }
        let report = EpochReport {
            epoch,
            epochs: config.epochs,
            loss: scalar(loss_sum)? / data.len() as f64,
            samples: data.len(),
            elapsed: start.elapsed(),
        };
        on_epoch(&report);
        reports.push(report);
    }

    let params = model.to_params(global.spec())?;
    let delta = params.delta_from(global)?;
    Ok(LocalUpdate {
        params,
        delta,
        samples: data.len() as u64,
        epochs: reports,
    })
}
