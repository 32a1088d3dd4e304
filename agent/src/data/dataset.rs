//! Labelled samples in memory: a row-major feature matrix and one label per row.

/// Labelled samples: `len()` rows of `features()` values each, row-major, and one class label
/// per row.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    values: Vec<f32>,
    labels: Vec<u32>,
    features: usize,
}

impl Dataset {
    /// Builds a dataset; `values.len()` must be `labels.len() · features`.
    pub fn new(values: Vec<f32>, labels: Vec<u32>, features: usize) -> Option<Self> {
        (labels.len().checked_mul(features) == Some(values.len())).then_some(Self {
            values,
            labels,
            features,
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there is no sample.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Features per sample.
    pub fn features(&self) -> usize {
        self.features
    }

    /// All feature values, row-major.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Mutable feature values, row-major (for in-place transforms).
    pub(crate) fn values_mut(&mut self) -> &mut [f32] {
        &mut self.values
    }

    /// All labels.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Sample `i`'s features.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.features..(i + 1) * self.features]
    }

    /// The samples at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        let mut values = Vec::with_capacity(indices.len() * self.features);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            values.extend_from_slice(self.row(i));
            labels.push(self.labels[i]);
        }
        Dataset {
            values,
            labels,
            features: self.features,
        }
    }

    /// The indices of the samples of each class `0..classes`.
    pub fn indices_by_class(&self, classes: usize) -> Vec<Vec<usize>> {
        let mut by_class = vec![Vec::new(); classes];
        for (i, &l) in self.labels.iter().enumerate() {
            if let Some(bucket) = by_class.get_mut(l as usize) {
                bucket.push(i);
            }
        }
        by_class
    }
}
