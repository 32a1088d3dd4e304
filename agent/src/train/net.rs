//! The burn modules for each [`ModelSpec`], built from and flattened to [`Params`].
//!
//! Construction walks the spec's layout in order and takes each tensor from the flat vector
//! by name and shape; flattening visits the module's parameters (burn visits fields in
//! declaration order and `Vec` items in index order) and checks every shape against the same
//! layout, so a module whose traversal drifts from the layout is an error, not a silent
//! permutation of the update.

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use flock_model::{CNN_KERNEL, Layout, ModelError, ModelSpec, ParamInfo, Params};

use super::TrainError;

/// A multilayer perceptron: linear layers with a ReLU between them.
#[derive(Module, Debug)]
pub struct Mlp {
    layers: Vec<Linear>,
}

/// Convolutions with ReLUs, a 2×2 max-pool, a dense layer with a ReLU, the output layer.
#[derive(Module, Debug)]
pub struct Cnn {
    convs: Vec<Conv2d>,
    pool: MaxPool2d,
    hidden: Linear,
    output: Linear,
    height: usize,
    width: usize,
}

/// Any model a spec can describe.
// burn implements `Module` for no `Box`, and one `Net` lives per training run: the size
// difference between the variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Net {
    /// [`ModelSpec::Mlp`].
    Mlp(Mlp),
    /// [`ModelSpec::Cnn`].
    Cnn(Cnn),
}

/// Hands out the flat vector's tensors in layout order.
struct Take<'a> {
    tensors: std::slice::Iter<'a, ParamInfo>,
    values: &'a [f32],
    device: &'a Device,
}

impl Take<'_> {
    fn next<const D: usize>(&mut self, name: &str) -> Result<Param<Tensor<D>>, TrainError> {
        let info = self.tensors.next().ok_or_else(|| {
            TrainError::Model(ModelError::InvalidSpec(format!(
                "layout has no tensor {name}"
            )))
        })?;
        if info.name != name || info.shape.len() != D {
            return Err(TrainError::Model(ModelError::InvalidSpec(format!(
                "layout lists {} {:?} where the module has {name} of rank {D}",
                info.name, info.shape
            ))));
        }
        let data = TensorData::new(
            self.values[info.offset..info.offset + info.len()].to_vec(),
            info.shape.clone(),
        );
        Ok(Param::from_tensor(Tensor::from_data(data, self.device)))
    }

    fn linear(&mut self, prefix: &str) -> Result<Linear, TrainError> {
        Ok(Linear {
            weight: self.next(&format!("{prefix}.weight"))?,
            bias: Some(self.next(&format!("{prefix}.bias"))?),
        })
    }
}

impl Net {
    /// Builds the module for `params`' spec on `device`, with `params`' values.
    pub fn from_params(params: &Params, device: &Device) -> Result<Self, TrainError> {
        let layout = params.layout()?;
        let mut take = Take {
            tensors: layout.tensors().iter(),
            values: params.values(),
            device,
        };
        let net = match params.spec() {
            ModelSpec::Mlp { hidden, .. } => Net::Mlp(Mlp {
                layers: (0..=hidden.len())
                    .map(|i| take.linear(&format!("layers.{i}")))
                    .collect::<Result<_, _>>()?,
            }),
            ModelSpec::Cnn {
                height,
                width,
                channels,
                ..
            } => {
                let mut in_channels = 1;
                let mut convs = Vec::with_capacity(channels.len());
                for (i, &out) in channels.iter().enumerate() {
                    let mut conv = Conv2dConfig::new([in_channels, out], [CNN_KERNEL, CNN_KERNEL])
                        .with_padding(PaddingConfig2d::Same)
                        .init(device);
                    conv.weight = take.next(&format!("convs.{i}.weight"))?;
                    conv.bias = Some(take.next(&format!("convs.{i}.bias"))?);
                    convs.push(conv);
                    in_channels = out;
                }
                Net::Cnn(Cnn {
                    convs,
                    pool: MaxPool2dConfig::new([2, 2]).init(),
                    hidden: take.linear("hidden")?,
                    output: take.linear("output")?,
                    height: *height,
                    width: *width,
                })
            }
        };
        Ok(net)
    }

    /// The logits `[batch, classes]` for inputs `[batch, features]`.
    pub fn forward(&self, input: Tensor<2>) -> Tensor<2> {
        match self {
            Net::Mlp(mlp) => {
                let last = mlp.layers.len().saturating_sub(1);
                mlp.layers.iter().enumerate().fold(input, |x, (i, layer)| {
                    let y = layer.forward(x);
                    if i < last { relu(y) } else { y }
                })
            }
            Net::Cnn(cnn) => {
                let [batch, _] = input.dims();
                let mut x: Tensor<4> = input.reshape([batch, 1, cnn.height, cnn.width]);
                for conv in &cnn.convs {
                    x = relu(conv.forward(x));
                }
                let x: Tensor<2> = cnn.pool.forward(x).flatten(1, 3);
                cnn.output.forward(relu(cnn.hidden.forward(x)))
            }
        }
    }

    /// All parameters as one 1-D tensor in layout order (differentiable: the FedProx term is
    /// computed from it).
    pub fn flat(&self) -> Tensor<1> {
        let mut collect = Collect { parts: Vec::new() };
        self.visit(&mut collect);
        Tensor::cat(collect.parts, 0)
    }

    /// Reads the parameters back as a flat vector for `spec`, checking the module's traversal
    /// against its layout.
    pub fn to_params(&self, spec: &ModelSpec) -> Result<Params, TrainError> {
        let layout = spec.layout()?;
        check_shapes(self, &layout)?;
        let values = self
            .flat()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| TrainError::Backend(format!("reading parameters back: {e:?}")))?;
        Ok(Params::new(spec.clone(), values)?)
    }
}

struct Collect {
    parts: Vec<Tensor<1>>,
}

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let tensor = param.val();
        let n = tensor.shape().num_elements();
        self.parts.push(tensor.reshape([n]));
    }
}

struct Shapes {
    shapes: Vec<Vec<usize>>,
}

impl ModuleVisitor for Shapes {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.shapes.push(param.val().dims().to_vec());
    }
}

fn check_shapes(net: &Net, layout: &Layout) -> Result<(), TrainError> {
    let mut shapes = Shapes { shapes: Vec::new() };
    net.visit(&mut shapes);
    let expected: Vec<&Vec<usize>> = layout.tensors().iter().map(|t| &t.shape).collect();
    if shapes.shapes.iter().collect::<Vec<_>>() != expected {
        return Err(TrainError::Model(ModelError::InvalidSpec(format!(
            "the module's parameters {:?} do not follow the layout {:?}",
            shapes.shapes, expected
        ))));
    }
    Ok(())
}
