//! Evaluation of a model on labelled data: mean loss, accuracy, per-class F1.

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Int, Tensor};
use flock_model::Params;
use flock_model::metrics::Evaluation;

use super::local::{check_features, scalar, upload};
use super::net::Net;
use super::{TrainDevice, TrainError};
use crate::data::Dataset;

/// Samples per forward pass during evaluation.
const EVAL_BATCH: usize = 1024;

/// Evaluates `params` on `data`.
pub fn evaluate(
    device: &TrainDevice,
    params: &Params,
    data: &Dataset,
) -> Result<Evaluation, TrainError> {
    check_features(params, data)?;
    let dev = device.device();
    let model = Net::from_params(params, dev)?;
    let loss_fn = CrossEntropyLossConfig::new().init(dev);
    let (x_all, y_all) = upload(data, dev);
    let mut predictions = Vec::with_capacity(data.len());
    let mut loss_sum = 0.0;
    let mut start = 0;
    while start < data.len() {
        let end = (start + EVAL_BATCH).min(data.len());
        let x = x_all.clone().slice(start..end);
        let y: Tensor<1, Int> = y_all.clone().slice(start..end);
        let logits = model.forward(x);
        loss_sum += scalar(loss_fn.forward(logits.clone(), y))? * (end - start) as f64;
        let predicted: Tensor<1, Int> = logits.argmax(1).flatten(0, 1);
        predictions.extend(
            predicted
                .into_data()
                .convert::<i64>()
                .try_into_vec::<i64>()
                .map_err(|e| TrainError::Backend(format!("reading predictions back: {e:?}")))?
                .into_iter()
                .map(|p| u32::try_from(p).unwrap_or(u32::MAX)),
        );
        start = end;
    }
    Ok(Evaluation::from_predictions(
        params.spec().classes(),
        data.labels(),
        &predictions,
        loss_sum,
    ))
}
