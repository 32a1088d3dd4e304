//! Model files on this device: the cache in the state directory (`models/<id>.safetensors`,
//! every file checked against its name when it is read) and the assembly of a download from
//! the aggregator's chunks, bounded by what a model of the task's architecture can weigh and
//! refused unless its bytes hash to the id that was asked for.

use std::path::{Path, PathBuf};

use flock_model::{ModelId, ModelSpec, Params, file};
use tracing::warn;

use super::AgentError;

/// Room for a model file's header and metadata beyond its parameters' bytes.
const HEADER_ALLOWANCE: u64 = 1 << 20;

/// The largest file a model of `spec` can be: its parameters as f32, plus the header.
pub(crate) fn max_file_bytes(spec: &ModelSpec) -> u64 {
    let params = spec.layout().map_or(0, |l| l.num_params() as u64);
    params.saturating_mul(4).saturating_add(HEADER_ALLOWANCE)
}

/// The model files kept in the state directory.
#[derive(Clone, Debug)]
pub(crate) struct ModelCache {
    dir: PathBuf,
}

impl ModelCache {
    /// The cache under `state_dir`.
    pub(crate) fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.join("models"),
        }
    }

    fn path(&self, id: &ModelId) -> PathBuf {
        self.dir.join(format!("{id}.safetensors"))
    }

    /// Model `id`, if a file whose bytes hash to it is kept (one that does not is ignored, and
    /// the model is fetched again).
    pub(crate) fn get(&self, id: &ModelId) -> Option<Params> {
        let path = self.path(id);
        if !path.exists() {
            return None;
        }
        match file::load_verified(&path, id) {
            Ok(p) => Some(p),
            Err(e) => {
                warn!("cached model ignored: {e}");
                None
            }
        }
    }

    /// Keeps model `id`'s (checked) `bytes`.
    pub(crate) fn keep(&self, id: &ModelId, bytes: &[u8]) -> Result<(), AgentError> {
        flock_durable::create_dir_all(&self.dir, flock_durable::Access::Private)?;
        Ok(file::save_bytes(&self.path(id), bytes)?)
    }
}

/// A model file arriving in chunks.
#[derive(Debug)]
pub(crate) struct Download {
    id: ModelId,
    max: u64,
    bytes: Vec<u8>,
    total: Option<u64>,
    received: u64,
}

impl Download {
    /// A download of model `id`, refused if the aggregator announces more than `max` bytes.
    pub(crate) fn new(id: ModelId, max: u64) -> Self {
        Self {
            id,
            max,
            bytes: Vec::new(),
            total: None,
            received: 0,
        }
    }

    /// Adds the chunk at `offset` of a file of `total` bytes; the file's bytes once they have
    /// all arrived and hash to the id.
    ///
    /// # Errors
    /// [`AgentError::Aggregator`] for a chunk outside the file, a file larger than the bound or
    /// a total that changes; [`AgentError::ModelRefused`] for a whole file whose bytes hash to
    /// another id.
    pub(crate) fn add(
        &mut self,
        offset: u64,
        total: u64,
        piece: &[u8],
    ) -> Result<Option<Vec<u8>>, AgentError> {
        let id = self.id;
        let bad = |what: String| Err(AgentError::Aggregator(format!("model {id}: {what}")));
        if total > self.max {
            return bad(format!(
                "a file of {total} bytes, more than a model of the task's architecture can be \
                 ({} bytes)",
                self.max
            ));
        }
        if self.total.is_some_and(|t| t != total) {
            return bad(format!(
                "a chunk of a file of {total} bytes, then of another size"
            ));
        }
        let end = offset.checked_add(piece.len() as u64);
        let Some(end) = end.filter(|&e| e <= total) else {
            return bad(format!(
                "a chunk beyond its file ({offset}+{} of {total})",
                piece.len()
            ));
        };
        if self.total.is_none() {
            self.total = Some(total);
            self.bytes = vec![0; total as usize];
        }
        self.bytes[offset as usize..end as usize].copy_from_slice(piece);
        self.received += piece.len() as u64;
        if self.received < total {
            return Ok(None);
        }
        let bytes = std::mem::take(&mut self.bytes);
        let actual = ModelId::of(&bytes);
        if actual != id {
            return Err(AgentError::ModelRefused(format!(
                "the aggregator sent a model file whose bytes hash to {actual}, not to the \
                 announced {id}"
            )));
        }
        Ok(Some(bytes))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn model() -> (Vec<u8>, ModelId) {
        file::encode(&Params::init(&ModelSpec::default_mlp(3, 2), 1).unwrap()).unwrap()
    }

    #[test]
    fn chunks_in_any_order_make_the_file_and_its_hash_is_checked() {
        let (bytes, id) = model();
        let total = bytes.len() as u64;
        let mut d = Download::new(id, max_file_bytes(&ModelSpec::default_mlp(3, 2)));
        let half = bytes.len() / 2;
        assert!(d.add(half as u64, total, &bytes[half..]).unwrap().is_none());
        assert_eq!(
            d.add(0, total, &bytes[..half]).unwrap(),
            Some(bytes.clone())
        );

        let mut tampered = bytes.clone();
        tampered[100] ^= 1;
        let mut d = Download::new(id, u64::MAX);
        let err = d.add(0, total, &tampered).unwrap_err();
        assert!(matches!(err, AgentError::ModelRefused(_)), "{err}");
    }

    #[test]
    fn chunks_outside_the_file_or_the_bound_are_refused_before_any_allocation() {
        let (_, id) = model();
        let max = max_file_bytes(&ModelSpec::default_mlp(3, 2));
        for (offset, total, len) in [
            (0, 1 << 32, 1),         // far more than the architecture can weigh
            (u64::MAX - 1, 100, 10), // an offset whose end overflows
            (95, 100, 10),           // past the end
        ] {
            let mut d = Download::new(id, max);
            let err = d.add(offset, total, &vec![0; len]).unwrap_err();
            assert!(matches!(err, AgentError::Aggregator(_)), "{err}");
            assert!(d.bytes.is_empty());
        }
        let mut d = Download::new(id, max);
        assert!(d.add(0, 100, &[0; 10]).unwrap().is_none());
        assert!(d.add(10, 200, &[0; 10]).is_err(), "the total changed");
    }

    #[test]
    fn a_cached_file_that_does_not_hash_to_its_name_is_ignored() {
        let dir = std::env::temp_dir().join(format!("flock-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cache = ModelCache::new(&dir);
        let (bytes, id) = model();
        assert!(cache.get(&id).is_none());
        cache.keep(&id, &bytes).unwrap();
        assert!(cache.get(&id).is_some());
        std::fs::write(cache.path(&id), b"not a model").unwrap();
        assert!(cache.get(&id).is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
