//! Connecting to a node: an HTTP(S) provider that signs with local keys, fills gas, the nonce
//! (asked from the node every time, so a failed send never leaves a gap) and the chain id.
//! HTTPS uses flock-transport's TLS client configuration (its one crypto provider, the
//! platform's trust store); nothing process-wide is installed.

use std::time::Duration;

use alloy::network::EthereumWallet;
use alloy::providers::fillers::GasFiller;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;

use crate::error::ChainError;

/// How long one JSON-RPC request may take before it counts as a transient failure.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// A provider for `url` that can sign for every key in `signers` (the first is the default
/// sender). Each request times out after `request_timeout`.
pub fn connect(
    url: &str,
    signers: impl IntoIterator<Item = PrivateKeySigner>,
    request_timeout: Duration,
) -> Result<DynProvider, ChainError> {
    let url: reqwest::Url = url
        .parse()
        .map_err(|e| ChainError::Endpoint(format!("{url}: {e}")))?;
    // reqwest is built without a crypto provider of its own (its `rustls` feature would pull
    // aws-lc-rs): it gets a complete TLS configuration instead.
    let tls = flock_transport::tls::https_client_config()
        .map_err(|e| ChainError::Endpoint(format!("TLS for {url}: {e}")))?;
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(request_timeout)
        .connect_timeout(request_timeout.min(Duration::from_secs(5)))
        .build()
        .map_err(|e| ChainError::Endpoint(format!("HTTP client: {e}")))?;
    let mut signers = signers.into_iter();
    let builder = ProviderBuilder::new()
        .disable_recommended_fillers()
        .filler(GasFiller::default())
        .with_simple_nonce_management()
        .fetch_chain_id();
    let provider = match signers.next() {
        Some(first) => {
            let mut wallet = EthereumWallet::from(first);
            for s in signers {
                wallet.register_signer(s);
            }
            builder.wallet(wallet).connect_reqwest(http, url).erased()
        }
        None => builder.connect_reqwest(http, url).erased(),
    };
    Ok(provider)
}

/// Reads a signing key from `path`: one line, 64 hex digits with or without `0x` (what
/// `cast wallet new` and anvil print). Errors name the file, never its content.
pub fn load_key(path: &std::path::Path) -> Result<PrivateKeySigner, ChainError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ChainError::Key(format!("{}: {e}", path.display())))?;
    let hex = text.trim();
    let hex = hex.strip_prefix("0x").unwrap_or(hex);
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ChainError::Key(format!(
            "{}: not a private key (expected 64 hex digits, optionally after 0x)",
            path.display()
        )));
    }
    hex.parse::<PrivateKeySigner>()
        .map_err(|e| ChainError::Key(format!("{}: {e}", path.display())))
}
