//! Revocation without a restart: a server endpoint takes a new TLS configuration, with the CA's
//! current revocation list, whenever the CRL file's content changes (`flock-aggregator ca
//! revoke` rewrites it). New connections see it; a file that does not parse leaves the previous
//! configuration in force.

use std::path::PathBuf;
use std::time::Duration;

use quinn::Endpoint;
use tracing::{info, warn};

use crate::TransportError;
use crate::endpoint::{self, Settings};
use crate::tls::{Credentials, Trust, server_config};

/// Watches one CRL file for one server endpoint.
pub struct RevocationWatch {
    endpoint: Endpoint,
    credentials: Credentials,
    ca: PathBuf,
    crl: PathBuf,
    settings: Settings,
    /// The CRL file's content the endpoint's configuration was built from (`None`: unread).
    seen: Option<Vec<u8>>,
}

impl RevocationWatch {
    /// A watch of `crl` (issued by the CA certificate `ca`) for `endpoint`, which serves
    /// `credentials` with `settings`. The endpoint's configuration is taken to be built from
    /// the file's content as it is now.
    pub fn new(
        endpoint: Endpoint,
        credentials: Credentials,
        ca: PathBuf,
        crl: PathBuf,
        settings: Settings,
    ) -> Self {
        let seen = std::fs::read(&crl).ok();
        Self {
            endpoint,
            credentials,
            ca,
            crl,
            settings,
            seen,
        }
    }

    /// Looks at the file once: if its content changed, builds and installs a configuration
    /// with it. `Ok(true)` when a new configuration is in force; an error (the file unreadable
    /// or not a CRL of this CA) leaves the previous one, and is reported once, not at every
    /// look while nothing changes.
    pub fn check(&mut self) -> Result<bool, TransportError> {
        let now = match std::fs::read(&self.crl) {
            Ok(bytes) => bytes,
            Err(cause) if self.seen.take().is_some() => {
                return Err(TransportError::Io {
                    context: format!("reading {}", self.crl.display()),
                    cause,
                });
            }
            Err(_) => return Ok(false),
        };
        if self.seen.as_ref() == Some(&now) {
            return Ok(false);
        }
        self.seen = Some(now);
        let trust = Trust::load(&self.ca, Some(&self.crl))?;
        let tls = server_config(&self.credentials, &trust)?;
        let config = endpoint::server_config(tls, &self.settings)?;
        self.endpoint.set_server_config(Some(config));
        Ok(true)
    }

    /// Checks every `every`, logging reloads and refusals, until dropped (abort the task).
    pub async fn run(mut self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match self.check() {
                Ok(true) => info!(crl = %self.crl.display(), "revocation list reloaded"),
                Ok(false) => {}
                Err(e) => warn!("revocation list not reloaded, the previous one stays: {e}"),
            }
        }
    }
}
