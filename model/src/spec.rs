//! Model architectures and the flat parameter layout both sides derive from them.
//!
//! The layout is the contract between the trainer (burn modules), the model file and the
//! aggregator: parameter tensors in the order listed by [`ModelSpec::layout`], each flattened
//! row-major, concatenated. Tensor names and shapes are those of the burn modules the agent
//! builds (a linear layer's weight is `[inputs, outputs]`, a convolution's is
//! `[out_channels, in_channels, 3, 3]`), so the trainer checks its own traversal against it.

use serde::{Deserialize, Serialize};

use crate::ModelError;

/// The most parameters a spec may describe (1 Gi values, 4 GiB of f32): a spec comes from a
/// config file or the network and must not be able to ask for an absurd allocation.
pub const MAX_PARAMS: usize = 1 << 30;

/// Side of every convolution kernel in [`ModelSpec::Cnn`] (padding keeps the image size).
pub const CNN_KERNEL: usize = 3;

/// A model architecture, carried in the task config so that agent and aggregator build the
/// same model. Serialised with a `kind` tag, for example in TOML:
///
/// ```toml
/// kind = "mlp"
/// inputs = 30
/// hidden = [32]
/// classes = 2
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelSpec {
    /// A multilayer perceptron for tabular data: `inputs → hidden[0] → … → classes`, a ReLU
    /// after every hidden layer, logits out.
    Mlp {
        /// Number of input features.
        inputs: usize,
        /// Width of each hidden layer, in order (may be empty: logistic regression).
        hidden: Vec<usize>,
        /// Number of classes (logits).
        classes: usize,
    },
    /// A small convolutional network for one-channel images of `height × width` (the 8×8
    /// digits): per entry of `channels` a 3×3 convolution (padding 1) and a ReLU, then one 2×2
    /// max-pool, then a dense layer of `hidden` units with a ReLU, then `classes` logits.
    /// Input rows are the image's pixels, row-major.
    Cnn {
        /// Image height in pixels.
        height: usize,
        /// Image width in pixels.
        width: usize,
        /// Output channels of each convolution, in order (at least one).
        channels: Vec<usize>,
        /// Units of the dense layer after pooling.
        hidden: usize,
        /// Number of classes (logits).
        classes: usize,
    },
}

/// One parameter tensor of a [`Layout`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamInfo {
    /// Its name, as in the burn module and the model file (`layers.0.weight`).
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// The number of inputs feeding each output unit (sets the initial scale).
    pub fan_in: usize,
    /// Where it starts in the flat vector.
    pub offset: usize,
}

impl ParamInfo {
    /// Number of values (the product of the shape).
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor holds no value (never, for a valid spec).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Every parameter tensor of a model, in flattening order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    tensors: Vec<ParamInfo>,
    total: usize,
}

impl Layout {
    /// The tensors, in flattening order.
    pub fn tensors(&self) -> &[ParamInfo] {
        &self.tensors
    }

    /// Total number of parameters: the length of the flat vector.
    pub fn num_params(&self) -> usize {
        self.total
    }

    fn push(&mut self, name: String, shape: Vec<usize>, fan_in: usize) -> Result<(), ModelError> {
        let len = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n <= MAX_PARAMS)
            .ok_or_else(|| ModelError::InvalidSpec(format!("tensor {name} is too large")))?;
        let offset = self.total;
        self.total = offset
            .checked_add(len)
            .filter(|&n| n <= MAX_PARAMS)
            .ok_or_else(|| ModelError::InvalidSpec(format!("more than {MAX_PARAMS} parameters")))?;
        self.tensors.push(ParamInfo {
            name,
            shape,
            fan_in,
            offset,
        });
        Ok(())
    }

    /// A linear layer `prefix`: weight `[inputs, outputs]`, bias `[outputs]`.
    fn linear(&mut self, prefix: &str, inputs: usize, outputs: usize) -> Result<(), ModelError> {
        self.push(format!("{prefix}.weight"), vec![inputs, outputs], inputs)?;
        self.push(format!("{prefix}.bias"), vec![outputs], inputs)
    }
}

impl ModelSpec {
    /// The MLP the examples and tests use for a tabular dataset: one hidden layer of 32 units.
    pub fn default_mlp(inputs: usize, classes: usize) -> Self {
        ModelSpec::Mlp {
            inputs,
            hidden: vec![32],
            classes,
        }
    }

    /// The CNN the examples and tests use for the 8×8 digits.
    pub fn digits_cnn() -> Self {
        ModelSpec::Cnn {
            height: 8,
            width: 8,
            channels: vec![16, 32],
            hidden: 64,
            classes: 10,
        }
    }

    /// Number of input features a sample must have.
    pub fn inputs(&self) -> usize {
        match self {
            ModelSpec::Mlp { inputs, .. } => *inputs,
            ModelSpec::Cnn { height, width, .. } => height.saturating_mul(*width),
        }
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        match self {
            ModelSpec::Mlp { classes, .. } | ModelSpec::Cnn { classes, .. } => *classes,
        }
    }

    /// A short human description (`mlp 30-32-2`, `cnn 8x8 c16-32 h64 → 10`).
    pub fn describe(&self) -> String {
        match self {
            ModelSpec::Mlp {
                inputs,
                hidden,
                classes,
            } => {
                let widths: Vec<String> = std::iter::once(inputs)
                    .chain(hidden)
                    .chain(std::iter::once(classes))
                    .map(usize::to_string)
                    .collect();
                format!("mlp {}", widths.join("-"))
            }
            ModelSpec::Cnn {
                height,
                width,
                channels,
                hidden,
                classes,
            } => {
                let chans: Vec<String> = channels.iter().map(usize::to_string).collect();
                format!(
                    "cnn {height}x{width} c{} h{hidden} -> {classes}",
                    chans.join("-")
                )
            }
        }
    }

    /// Checks the spec and lists its parameter tensors in flattening order.
    ///
    /// Order: for an MLP, `layers.{i}.weight`, `layers.{i}.bias` for each layer including the
    /// output layer; for a CNN, `convs.{i}.weight`, `convs.{i}.bias` for each convolution, then
    /// `hidden.weight`, `hidden.bias`, `output.weight`, `output.bias`.
    pub fn layout(&self) -> Result<Layout, ModelError> {
        let mut layout = Layout {
            tensors: Vec::new(),
            total: 0,
        };
        let classes = self.classes();
        if classes < 2 {
            return Err(ModelError::InvalidSpec(format!(
                "classes is {classes}, at least 2 are needed"
            )));
        }
        match self {
            ModelSpec::Mlp { inputs, hidden, .. } => {
                let widths: Vec<usize> = std::iter::once(*inputs)
                    .chain(hidden.iter().copied())
                    .chain(std::iter::once(classes))
                    .collect();
                if let Some(i) = widths.iter().position(|&w| w == 0) {
                    let what = if i == 0 {
                        "inputs".to_string()
                    } else {
                        format!("hidden[{}]", i - 1)
                    };
                    return Err(ModelError::InvalidSpec(format!("{what} is 0")));
                }
                for (i, pair) in widths.windows(2).enumerate() {
                    layout.linear(&format!("layers.{i}"), pair[0], pair[1])?;
                }
            }
            ModelSpec::Cnn {
                height,
                width,
                channels,
                hidden,
                ..
            } => {
                if *height < 2 || *width < 2 {
                    return Err(ModelError::InvalidSpec(format!(
                        "image is {height}x{width}, the 2x2 pooling needs at least 2x2"
                    )));
                }
                if channels.is_empty() {
                    return Err(ModelError::InvalidSpec(
                        "channels is empty, at least one convolution is needed".into(),
                    ));
                }
                if let Some(i) = channels.iter().position(|&c| c == 0) {
                    return Err(ModelError::InvalidSpec(format!("channels[{i}] is 0")));
                }
                if *hidden == 0 {
                    return Err(ModelError::InvalidSpec("hidden is 0".into()));
                }
                let mut in_channels = 1;
                for (i, &out) in channels.iter().enumerate() {
                    let fan_in = in_channels * CNN_KERNEL * CNN_KERNEL;
                    layout.push(
                        format!("convs.{i}.weight"),
                        vec![out, in_channels, CNN_KERNEL, CNN_KERNEL],
                        fan_in,
                    )?;
                    layout.push(format!("convs.{i}.bias"), vec![out], fan_in)?;
                    in_channels = out;
                }
                let pooled = in_channels
                    .checked_mul(height / 2)
                    .and_then(|n| n.checked_mul(width / 2))
                    .ok_or_else(|| ModelError::InvalidSpec("image too large".into()))?;
                layout.linear("hidden", pooled, *hidden)?;
                layout.linear("output", *hidden, classes)?;
            }
        }
        Ok(layout)
    }
}
