//! A seeded, stratified train/validation split.

use rand::seq::SliceRandom;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

use super::{DataError, Dataset};

/// Splits `data` into (train, validation): within every class `0..classes`, a seeded shuffle
/// and `round(val_fraction · n_class)` samples to validation, so both parts keep the class
/// balance. The same data and seed give the same split on every machine.
pub fn split(
    data: &Dataset,
    classes: usize,
    val_fraction: f64,
    seed: u64,
) -> Result<(Dataset, Dataset), DataError> {
    if !(0.0..1.0).contains(&val_fraction) {
        return Err(DataError::Partition(format!(
            "validation fraction {val_fraction} is not in [0, 1)"
        )));
    }
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut train = Vec::new();
    let mut val = Vec::new();
    for mut indices in data.indices_by_class(classes) {
        indices.shuffle(&mut rng);
        let n_val = (val_fraction * indices.len() as f64).round() as usize;
        val.extend_from_slice(&indices[..n_val]);
        train.extend_from_slice(&indices[n_val..]);
    }
    if train.is_empty() {
        return Err(DataError::Partition(format!(
            "a {val_fraction} validation split of {} samples leaves none to train on",
            data.len()
        )));
    }
    // Interleave the classes again (the trainer shuffles too; this keeps subsets readable).
    train.sort_unstable();
    val.sort_unstable();
    Ok((data.select(&train), data.select(&val)))
}
