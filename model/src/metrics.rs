//! Evaluation metrics from predictions: mean loss, accuracy, per-class precision/recall/F1 and
//! the confusion matrix. Voters compute these on their private test data.

use serde::{Deserialize, Serialize};

/// The result of evaluating a model on a labelled set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Number of samples evaluated.
    pub samples: usize,
    /// Mean cross-entropy loss.
    pub loss: f64,
    /// Fraction of samples whose predicted class is the label.
    pub accuracy: f64,
    /// F1 score per class (0 where a class is neither predicted nor present).
    pub f1: Vec<f64>,
    /// `confusion[label][predicted]` counts.
    pub confusion: Vec<Vec<u64>>,
}

impl Evaluation {
    /// Builds the metrics from labels and predictions (both `< classes`; pairs beyond the
    /// shorter of the two are ignored, out-of-range classes are not counted as correct) and the
    /// summed loss over the samples.
    pub fn from_predictions(
        classes: usize,
        labels: &[u32],
        predictions: &[u32],
        loss_sum: f64,
    ) -> Self {
        let mut confusion = vec![vec![0u64; classes]; classes];
        let mut samples = 0usize;
        let mut correct = 0usize;
        for (&l, &p) in labels.iter().zip(predictions) {
            samples += 1;
            let (l, p) = (l as usize, p as usize);
            if l < classes && p < classes {
                confusion[l][p] += 1;
                if l == p {
                    correct += 1;
                }
            }
        }
        let f1 = (0..classes)
            .map(|c| {
                let tp = confusion[c][c] as f64;
                let predicted: u64 = confusion.iter().map(|row| row[c]).sum();
                let actual: u64 = confusion[c].iter().sum();
                let denom = (predicted + actual) as f64;
                if denom == 0.0 { 0.0 } else { 2.0 * tp / denom }
            })
            .collect();
        let n = samples.max(1) as f64;
        Evaluation {
            samples,
            loss: loss_sum / n,
            accuracy: correct as f64 / n,
            f1,
            confusion,
        }
    }

    /// The unweighted mean of the per-class F1 scores.
    pub fn macro_f1(&self) -> f64 {
        if self.f1.is_empty() {
            0.0
        } else {
            self.f1.iter().sum::<f64>() / self.f1.len() as f64
        }
    }
}

/// Pools evaluations of one model on several sets (each voter's, each client's): confusion
/// matrices and loss sums add up, the rates are recomputed. `None` for no evaluation or for
/// evaluations over different class counts.
pub fn pool(evaluations: &[Evaluation]) -> Option<Evaluation> {
    let classes = evaluations.first()?.confusion.len();
    if evaluations.iter().any(|e| e.confusion.len() != classes) {
        return None;
    }
    let mut labels = Vec::new();
    let mut predictions = Vec::new();
    let mut loss_sum = 0.0;
    for e in evaluations {
        loss_sum += e.loss * e.samples as f64;
        for (l, row) in e.confusion.iter().enumerate() {
            for (p, &count) in row.iter().enumerate() {
                for _ in 0..count {
                    labels.push(l as u32);
                    predictions.push(p as u32);
                }
            }
        }
    }
    Some(Evaluation::from_predictions(
        classes,
        &labels,
        &predictions,
        loss_sum,
    ))
}
