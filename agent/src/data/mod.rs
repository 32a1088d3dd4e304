//! Where training samples come from, and what is done to them before training.
//!
//! - [`DataSource`]: anything that yields a labelled [`Dataset`]; firmware implements it for its
//!   own samples, [`CsvSource`] reads a CSV file.
//! - [`split`]: a seeded, stratified train/validation split.
//! - [`Standardizer`]: per-feature standardisation fitted on training data only; in a federation
//!   from [`FeatureMoments`] summed over the clients, so that everyone scales alike.
//! - [`partition`]: the non-IID (Dirichlet) partitioner for simulations.
//!
//! Bad data is a [`DataError`] that names the file, line and column, never a panic.

mod csv_source;
mod dataset;
mod error;
pub mod partition;
mod split;
mod standardize;

pub use csv_source::CsvSource;
pub use dataset::Dataset;
pub use error::DataError;
pub use split::split;
pub use standardize::{FeatureMoments, Standardizer};

/// A source of labelled samples.
pub trait DataSource {
    /// A short name for logs and errors (a path, a sensor, a table).
    fn name(&self) -> String;

    /// Loads every sample. `classes` is the task's number of classes: a label outside
    /// `0..classes` is an error.
    fn load(&self, classes: usize) -> Result<Dataset, DataError>;
}

/// Samples already in memory are a source too (tests, firmware that collects its own).
impl DataSource for Dataset {
    fn name(&self) -> String {
        format!("{} in-memory samples", self.len())
    }

    fn load(&self, classes: usize) -> Result<Dataset, DataError> {
        if let Some(&label) = self.labels().iter().find(|&&l| l as usize >= classes) {
            return Err(DataError::LabelOutOfRange {
                origin: self.name(),
                line: None,
                value: label.to_string(),
                classes,
            });
        }
        Ok(self.clone())
    }
}
