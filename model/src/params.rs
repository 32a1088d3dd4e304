//! A model's parameters as one flat vector, tied to the spec that gives it meaning.

use crate::{Layout, ModelError, ModelSpec};

/// All parameters of a model, flattened in [`ModelSpec::layout`] order.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    spec: ModelSpec,
    values: Vec<f32>,
}

impl Params {
    /// Ties `values` to `spec`; fails if the spec is invalid or the length is not its parameter
    /// count.
    pub fn new(spec: ModelSpec, values: Vec<f32>) -> Result<Self, ModelError> {
        let expected = spec.layout()?.num_params();
        if values.len() != expected {
            return Err(ModelError::WrongLength {
                expected,
                got: values.len(),
            });
        }
        Ok(Self { spec, values })
    }

    /// The architecture.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The layout of [`Self::spec`] (valid: it was checked on construction).
    pub fn layout(&self) -> Result<Layout, ModelError> {
        self.spec.layout()
    }

    /// The flat values.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// The flat values, by value.
    pub fn into_values(self) -> Vec<f32> {
        self.values
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are no parameters (never, for a valid spec).
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `self − base`, element by element: the update a client sends. Both must share a spec.
    pub fn delta_from(&self, base: &Params) -> Result<Vec<f32>, ModelError> {
        if self.spec != base.spec {
            return Err(ModelError::Aggregate(format!(
                "specs differ: {} vs {}",
                self.spec.describe(),
                base.spec.describe()
            )));
        }
        Ok(self
            .values
            .iter()
            .zip(&base.values)
            .map(|(w, b)| w - b)
            .collect())
    }

    /// `self + scale · delta`, element by element, as a new parameter set.
    pub fn with_update(&self, delta: &[f32], scale: f32) -> Result<Params, ModelError> {
        if delta.len() != self.values.len() {
            return Err(ModelError::WrongLength {
                expected: self.values.len(),
                got: delta.len(),
            });
        }
        let values = self
            .values
            .iter()
            .zip(delta)
            .map(|(w, d)| w + scale * d)
            .collect();
        Ok(Params {
            spec: self.spec.clone(),
            values,
        })
    }
}
