//! Reads labelled samples from a CSV file with a header row.
//!
//! One column (named in the config) is the label, an integer class `0..classes`; every other
//! column is a numeric feature, in file order. Cells are trimmed. Every problem is reported
//! with the file, the 1-based line and, for cells, the 1-based column and its name.

use std::path::{Path, PathBuf};

use super::{DataError, DataSource, Dataset};

/// A CSV file of labelled samples.
#[derive(Clone, Debug)]
pub struct CsvSource {
    path: PathBuf,
    label: String,
}

/// An open CSV reader positioned after the header, with the label column located.
pub(crate) struct CsvTable {
    pub(crate) reader: csv::Reader<std::fs::File>,
    pub(crate) headers: csv::StringRecord,
    pub(crate) label_column: usize,
}

impl CsvSource {
    /// A source reading `path`, whose column `label` holds the class.
    pub fn new(path: impl Into<PathBuf>, label: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            label: label.into(),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the file, reads the header and finds the label column.
    pub(crate) fn open(&self) -> Result<CsvTable, DataError> {
        let path = &self.path;
        let file = std::fs::File::open(path).map_err(|source| DataError::Io {
            path: path.clone(),
            cause: source,
        })?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(file);
        let headers = reader.headers().map_err(|e| malformed(path, &e))?.clone();
        if headers.is_empty() || (headers.len() == 1 && headers[0].is_empty()) {
            return Err(DataError::Empty { path: path.clone() });
        }
        let label_column = headers
            .iter()
            .position(|h| h == self.label)
            .ok_or_else(|| DataError::UnknownLabelColumn {
                path: path.clone(),
                label: self.label.clone(),
                columns: headers.iter().collect::<Vec<_>>().join(", "),
            })?;
        Ok(CsvTable {
            reader,
            headers,
            label_column,
        })
    }
}

impl CsvTable {
    /// Reads the next row, checking its width. `None` at the end of the file.
    pub(crate) fn next_row(
        &mut self,
        path: &Path,
        row: &mut csv::StringRecord,
    ) -> Result<Option<u64>, DataError> {
        if !self
            .reader
            .read_record(row)
            .map_err(|e| malformed(path, &e))?
        {
            return Ok(None);
        }
        let line = row.position().map_or(0, csv::Position::line);
        if row.len() != self.headers.len() {
            return Err(DataError::Ragged {
                path: path.to_path_buf(),
                line,
                expected: self.headers.len(),
                got: row.len(),
            });
        }
        Ok(Some(line))
    }

    /// Parses the label cell of `row` as a class below `classes`.
    pub(crate) fn label(
        &self,
        path: &Path,
        line: u64,
        row: &csv::StringRecord,
        classes: usize,
    ) -> Result<u32, DataError> {
        let cell = &row[self.label_column];
        match cell.parse::<u32>() {
            Ok(label) if (label as usize) < classes => Ok(label),
            _ => Err(DataError::LabelOutOfRange {
                origin: path.display().to_string(),
                line: Some(line),
                value: cell.to_string(),
                classes,
            }),
        }
    }
}

fn malformed(path: &Path, e: &csv::Error) -> DataError {
    DataError::Malformed {
        path: path.to_path_buf(),
        line: e.position().map_or(0, csv::Position::line),
        reason: e.to_string(),
    }
}

impl DataSource for CsvSource {
    fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn load(&self, classes: usize) -> Result<Dataset, DataError> {
        let path = &self.path;
        let mut table = self.open()?;
        let features = table.headers.len() - 1;
        let mut values = Vec::new();
        let mut labels = Vec::new();
        let mut row = csv::StringRecord::new();
        while let Some(line) = table.next_row(path, &mut row)? {
            labels.push(table.label(path, line, &row, classes)?);
            for (column, cell) in row.iter().enumerate() {
                if column == table.label_column {
                    continue;
                }
                let cell_error = |finite: bool| {
                    let (column, name, value) = (
                        column + 1,
                        table.headers[column].to_string(),
                        cell.to_string(),
                    );
                    let path = path.clone();
                    if finite {
                        DataError::NotNumeric {
                            path,
                            line,
                            column,
                            name,
                            value,
                        }
                    } else {
                        DataError::NotFinite {
                            path,
                            line,
                            column,
                            name,
                            value,
                        }
                    }
                };
                let value: f32 = cell.parse().map_err(|_| cell_error(true))?;
                if !value.is_finite() {
                    return Err(cell_error(false));
                }
                values.push(value);
            }
        }
        if labels.is_empty() {
            return Err(DataError::NoRows { path: path.clone() });
        }
        Dataset::new(values, labels, features).ok_or_else(|| {
            DataError::Partition(format!("{}: rows of unequal width", path.display()))
        })
    }
}
