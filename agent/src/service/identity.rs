//! The device's long-term identity: the ed25519 key of its certificate, which also signs its
//! SecAgg+ key adverts.

use std::path::Path;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use flock_protocol::Identity;

use super::AgentError;

/// Reads the device key (PKCS#8 PEM, ed25519) as a protocol identity.
pub fn load_identity(key: &Path) -> Result<Identity, AgentError> {
    let pem = std::fs::read_to_string(key).map_err(|e| AgentError::Identity {
        path: key.to_path_buf(),
        reason: e.to_string(),
    })?;
    let signing = SigningKey::from_pkcs8_pem(&pem).map_err(|e| AgentError::Identity {
        path: key.to_path_buf(),
        reason: format!("not an ed25519 PKCS#8 key: {e}"),
    })?;
    Ok(Identity::from_secret_bytes(&signing.to_bytes()))
}
