//! Model files: safetensors on disk, identified by the SHA-256 of their bytes.
//!
//! A file holds one `F32` tensor per entry of the spec's layout, under the layout's names and
//! shapes, and the spec itself as JSON under the metadata key [`SPEC_KEY`]. With one metadata
//! key and tensors sorted by name (safetensors' rule), the same parameters always encode to the
//! same bytes, so the [`ModelId`] is a function of the model: the aggregator anchors it on
//! chain, an agent refuses any file whose bytes do not hash to it.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::{ModelError, ModelSpec, Params};

/// The safetensors metadata key that carries the model spec (JSON).
pub const SPEC_KEY: &str = "flock.model_spec";

/// A model's id: the SHA-256 of its file's bytes. Shown and parsed as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelId(pub [u8; 32]);

impl ModelId {
    /// The id of these bytes.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }
}

impl fmt::Display for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ModelId({self})")
    }
}

impl FromStr for ModelId {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.strip_prefix("0x").unwrap_or(s);
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|e| ModelError::BadFile {
            path: PathBuf::from("<model id>"),
            reason: format!("{s:?} is not 64 hex digits: {e}"),
        })?;
        Ok(Self(out))
    }
}

impl Serialize for ModelId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ModelId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Encodes `params` as safetensors bytes and returns them with their id.
pub fn encode(params: &Params) -> Result<(Vec<u8>, ModelId), ModelError> {
    let layout = params.layout()?;
    let bad = |reason: String| ModelError::BadFile {
        path: PathBuf::from("<memory>"),
        reason,
    };
    let bytes: Vec<u8> = params
        .values()
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let mut views = Vec::with_capacity(layout.tensors().len());
    for t in layout.tensors() {
        let data = &bytes[t.offset * 4..(t.offset + t.len()) * 4];
        let view = TensorView::new(Dtype::F32, t.shape.clone(), data)
            .map_err(|e| bad(format!("tensor {}: {e}", t.name)))?;
        views.push((t.name.clone(), view));
    }
    let spec = serde_json::to_string(params.spec()).map_err(|e| bad(e.to_string()))?;
    let metadata = HashMap::from([(SPEC_KEY.to_string(), spec)]);
    let out = safetensors::serialize(views, Some(metadata)).map_err(|e| bad(e.to_string()))?;
    let id = ModelId::of(&out);
    Ok((out, id))
}

/// Decodes safetensors bytes into parameters. `origin` names the source in errors.
///
/// Refuses a file without the spec, with a tensor missing, extra, of another dtype or shape.
pub fn decode(bytes: &[u8], origin: &Path) -> Result<Params, ModelError> {
    let bad = |reason: String| ModelError::BadFile {
        path: origin.to_path_buf(),
        reason,
    };
    let (_, metadata) =
        SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("not safetensors: {e}")))?;
    let spec_json = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get(SPEC_KEY))
        .ok_or_else(|| bad(format!("no {SPEC_KEY} in the metadata: not a flock model")))?;
    let spec: ModelSpec = serde_json::from_str(spec_json)
        .map_err(|e| bad(format!("{SPEC_KEY} is not a model spec: {e}")))?;
    let layout = spec.layout().map_err(|e| bad(e.to_string()))?;
    let tensors =
        SafeTensors::deserialize(bytes).map_err(|e| bad(format!("not safetensors: {e}")))?;
    if tensors.len() != layout.tensors().len() {
        return Err(bad(format!(
            "{} tensors, the spec ({}) has {}",
            tensors.len(),
            spec.describe(),
            layout.tensors().len()
        )));
    }
    let mut values = Vec::with_capacity(layout.num_params());
    for t in layout.tensors() {
        let view = tensors
            .tensor(&t.name)
            .map_err(|_| bad(format!("tensor {} is missing", t.name)))?;
        if view.dtype() != Dtype::F32 {
            return Err(bad(format!(
                "tensor {} is {:?}, expected F32",
                t.name,
                view.dtype()
            )));
        }
        if view.shape() != t.shape.as_slice() {
            return Err(bad(format!(
                "tensor {} has shape {:?}, the spec says {:?}",
                t.name,
                view.shape(),
                t.shape
            )));
        }
        values.extend(
            view.data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
    }
    Params::new(spec, values)
}

/// Writes `params` to `path` durably (flock-durable: temporary file, fsync, rename, fsync of
/// the directory) and returns the model's id.
pub fn save(path: &Path, params: &Params) -> Result<ModelId, ModelError> {
    let (bytes, id) = encode(params)?;
    save_bytes(path, &bytes)?;
    Ok(id)
}

/// Writes a model file's `bytes` to `path` durably (they were checked or encoded by the
/// caller).
pub fn save_bytes(path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    flock_durable::write(path, flock_durable::Access::Shared, bytes).map_err(|e| ModelError::Io {
        path: e.path,
        cause: e.cause,
    })
}

/// Reads a model file, returning its parameters and id.
pub fn load(path: &Path) -> Result<(Params, ModelId), ModelError> {
    let bytes = std::fs::read(path).map_err(|cause| ModelError::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    let id = ModelId::of(&bytes);
    Ok((decode(&bytes, path)?, id))
}

/// Reads a model file and refuses it unless its bytes hash to `expected`.
pub fn load_verified(path: &Path, expected: &ModelId) -> Result<Params, ModelError> {
    let bytes = std::fs::read(path).map_err(|cause| ModelError::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    let actual = ModelId::of(&bytes);
    if actual != *expected {
        return Err(ModelError::HashMismatch {
            path: path.to_path_buf(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        });
    }
    decode(&bytes, path)
}
