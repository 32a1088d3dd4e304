//! Which data the run trains on: the two fixtures by name (`breast_cancer`, `digits`) or any
//! CSV with an integer label column; the number of classes and features are read from the
//! data, and the default accuracy threshold follows the data set.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use flock_agent::data::{CsvSource, DataSource, Dataset};

/// Labels may name at most this many classes.
const MAX_CLASSES: usize = 1000;

/// The data set of a run.
#[derive(Debug, Clone)]
pub(crate) struct DataChoice {
    /// Its name in the report (`breast_cancer`, `digits` or the file's stem).
    pub(crate) name: String,
    /// The CSV file.
    pub(crate) path: PathBuf,
    /// Its label column.
    pub(crate) label: String,
    /// The accuracy the final model must reach unless `--threshold` says otherwise.
    pub(crate) default_threshold: f64,
}

/// The whole data set, loaded.
pub(crate) struct Loaded {
    /// Every sample.
    pub(crate) data: Dataset,
    /// Classes (the largest label + 1).
    pub(crate) classes: usize,
}

/// The fixtures directory of this checkout.
fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/data")
}

/// Resolves `--dataset` (and `--label`).
pub(crate) fn resolve(dataset: &str, label: Option<&str>) -> anyhow::Result<DataChoice> {
    let fixture = |file: &str, threshold: f64| DataChoice {
        name: dataset.to_owned(),
        path: fixtures().join(file),
        label: label.unwrap_or("label").to_owned(),
        default_threshold: threshold,
    };
    let choice = match dataset {
        "breast_cancer" => fixture("breast_cancer.csv", 0.85),
        "digits" => fixture("digits.csv", 0.80),
        path => {
            let path = PathBuf::from(path);
            if path.extension().and_then(|e| e.to_str()) != Some("csv") {
                bail!(
                    "--dataset {dataset:?}: not one of breast_cancer, digits, nor the path of a \
                     .csv file"
                );
            }
            DataChoice {
                name: path
                    .file_stem()
                    .map_or_else(|| "data".into(), |s| s.to_string_lossy().into_owned()),
                label: label.unwrap_or("label").to_owned(),
                path,
                default_threshold: 0.80,
            }
        }
    };
    if !choice.path.is_file() {
        bail!(
            "--dataset {dataset:?}: {} does not exist",
            choice.path.display()
        );
    }
    Ok(choice)
}

/// Loads the whole file and counts its classes.
pub(crate) fn load(choice: &DataChoice) -> anyhow::Result<Loaded> {
    let data = CsvSource::new(&choice.path, &choice.label)
        .load(MAX_CLASSES)
        .with_context(|| {
            format!(
                "loading {} (label column {:?}; --label names another)",
                choice.path.display(),
                choice.label
            )
        })?;
    let classes = data.labels().iter().max().map_or(0, |&l| l as usize + 1);
    if classes < 2 {
        bail!(
            "{}: every label is 0; a classifier needs at least 2 classes",
            choice.path.display()
        );
    }
    Ok(Loaded { data, classes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_resolve_and_load() {
        let c = resolve("breast_cancer", None).unwrap();
        assert_eq!(c.default_threshold, 0.85);
        let l = load(&c).unwrap();
        assert_eq!((l.classes, l.data.features()), (2, 30));
        let d = resolve("digits", None).unwrap();
        assert_eq!(d.default_threshold, 0.80);
    }

    #[test]
    fn unknown_names_are_refused() {
        assert!(resolve("mnist", None).is_err());
        assert!(resolve("/nonexistent/x.csv", None).is_err());
    }
}
