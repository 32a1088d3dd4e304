//! Shared set-up for the trainer tests: the fixture datasets, split and standardised the way an
//! agent prepares its own data.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use flock_agent::data::{CsvSource, DataSource, Dataset, Standardizer, split};
use flock_model::ModelSpec;

/// A fixture dataset with its task's model and classes.
pub struct Fixture {
    pub name: &'static str,
    pub path: PathBuf,
    pub classes: usize,
    pub spec: ModelSpec,
}

pub fn fixture_path(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/data")
        .join(file)
}

pub fn breast_cancer() -> Fixture {
    Fixture {
        name: "breast_cancer",
        path: fixture_path("breast_cancer.csv"),
        classes: 2,
        spec: ModelSpec::default_mlp(30, 2),
    }
}

pub fn digits_cnn() -> Fixture {
    Fixture {
        name: "digits",
        path: fixture_path("digits.csv"),
        classes: 10,
        spec: ModelSpec::digits_cnn(),
    }
}

pub fn digits_mlp() -> Fixture {
    Fixture {
        spec: ModelSpec::default_mlp(64, 10),
        ..digits_cnn()
    }
}

impl Fixture {
    pub fn load(&self) -> Dataset {
        CsvSource::new(&self.path, "label")
            .load(self.classes)
            .unwrap()
    }

    /// 80/20 stratified split, standardised with statistics of the training part only.
    pub fn split(&self, seed: u64) -> (Dataset, Dataset) {
        prepare(&self.load(), self.classes, seed)
    }
}

/// 80/20 stratified split of `data`, standardised with statistics of the training part only.
pub fn prepare(data: &Dataset, classes: usize, seed: u64) -> (Dataset, Dataset) {
    let (mut train, mut test) = split(data, classes, 0.2, seed).unwrap();
    let scaler = Standardizer::fit(&train);
    scaler.apply(&mut train).unwrap();
    scaler.apply(&mut test).unwrap();
    (train, test)
}
