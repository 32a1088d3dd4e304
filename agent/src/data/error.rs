//! Errors in training data: each names where the data came from and, for files, the line and
//! column.

use std::path::PathBuf;

/// Why a data source could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The file could not be read.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause (in the message, not repeated as a source).
        cause: std::io::Error,
    },
    /// The file has no header row.
    #[error("{}: the file is empty (a header row is needed)", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The file has a header but no sample.
    #[error("{}: no data rows after the header", path.display())]
    NoRows {
        /// The file.
        path: PathBuf,
    },
    /// The label column named in the config is not in the header.
    #[error("{}: no column {label:?} in the header (columns: {columns})", path.display())]
    UnknownLabelColumn {
        /// The file.
        path: PathBuf,
        /// The label column asked for.
        label: String,
        /// The header's columns, comma-separated.
        columns: String,
    },
    /// A row with another number of cells than the header.
    #[error("{}:{line}: {got} cells, the header has {expected}", path.display())]
    Ragged {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// Cells in the header.
        expected: usize,
        /// Cells in this row.
        got: usize,
    },
    /// A feature cell that is not a number.
    #[error("{}:{line}: column {column} ({name}) is {value:?}, not a number", path.display())]
    NotNumeric {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// 1-based column number.
        column: usize,
        /// The column's header name.
        name: String,
        /// The cell.
        value: String,
    },
    /// A feature cell that is NaN or infinite.
    #[error("{}:{line}: column {column} ({name}) is {value:?}: NaN and infinities are not data", path.display())]
    NotFinite {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// 1-based column number.
        column: usize,
        /// The column's header name.
        name: String,
        /// The cell.
        value: String,
    },
    /// A label that is not an integer in `0..classes`.
    #[error("{origin}{}: label {value:?} is not a class of this task (0..{classes})", line.map(|l| format!(":{l}")).unwrap_or_default())]
    LabelOutOfRange {
        /// The file or source name.
        origin: String,
        /// 1-based line number, for files.
        line: Option<u64>,
        /// The label cell.
        value: String,
        /// The task's number of classes.
        classes: usize,
    },
    /// The file is not valid CSV (bad quoting, invalid UTF-8).
    #[error("{}:{line}: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What the CSV reader said.
        reason: String,
    },
    /// Samples with another number of features than the model takes.
    #[error("{origin}: samples have {got} features, {expected} expected")]
    FeatureCount {
        /// The source name.
        origin: String,
        /// What is expected (by the model, the standardisation).
        expected: usize,
        /// What the data has.
        got: usize,
    },
    /// A split or partition that cannot be made from this data.
    #[error("{0}")]
    Partition(String),
}
