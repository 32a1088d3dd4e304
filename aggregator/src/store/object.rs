//! The model store's object backend: S3 (or any S3-compatible service), `file://` and
//! `memory://` through the `object_store` crate, driven on a small runtime of its own so that
//! the store's synchronous API can be called from anywhere. S3's HTTPS goes through
//! flock-transport's TLS client configuration (its one crypto provider), handed to reqwest
//! explicitly.

use std::future::Future;

use object_store::aws::AmazonS3Builder;
use object_store::client::{ClientConfigKey, ClientOptions, HttpClient, HttpConnector};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::StoreError;

/// How long object_store's S3 requests may take (its own defaults).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Builds S3's HTTP client with flock-transport's TLS configuration.
#[derive(Debug)]
struct HttpsConnector;

impl HttpConnector for HttpsConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let generic =
            |source: Box<dyn std::error::Error + Send + Sync>| object_store::Error::Generic {
                store: "S3",
                source,
            };
        let tls = flock_transport::tls::https_client_config().map_err(|e| generic(Box::new(e)))?;
        let allow_http = options
            .get_config_value(&ClientConfigKey::AllowHttp)
            .is_some_and(|v| v == "true");
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .https_only(!allow_http)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| generic(Box::new(e)))?;
        Ok(HttpClient::new(client))
    }
}

pub(super) struct ObjectBackend {
    /// The store's URL (for messages).
    pub(super) url: url::Url,
    store: Box<dyn ObjectStore>,
    prefix: ObjectPath,
    /// Always `Some` until dropped (then shut down without blocking: the store may be dropped
    /// inside the aggregator's own runtime).
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for ObjectBackend {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl ObjectBackend {
    pub(super) fn open(url: &url::Url) -> Result<Self, StoreError> {
        let err = |reason: String| StoreError::Object {
            location: url.to_string(),
            reason,
        };
        let (store, prefix): (Box<dyn ObjectStore>, ObjectPath) = match url.scheme() {
            // S3 reads the standard AWS_* variables (credentials, region, `AWS_ENDPOINT`,
            // `AWS_ALLOW_HTTP`) and talks HTTPS through the workspace's TLS.
            "s3" | "s3a" => {
                let store = AmazonS3Builder::from_env()
                    .with_url(url.as_str())
                    .with_http_connector(HttpsConnector)
                    .build()
                    .map_err(|e| err(e.to_string()))?;
                let prefix =
                    ObjectPath::from_url_path(url.path()).map_err(|e| err(e.to_string()))?;
                (Box::new(store), prefix)
            }
            "file" | "memory" => object_store::parse_url(url).map_err(|e| err(e.to_string()))?,
            other => {
                return Err(err(format!(
                    "a store URL is s3://, file:// or memory://, not {other}://"
                )));
            }
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("model-store")
            .enable_all()
            .build()
            .map_err(|e| err(format!("starting its runtime: {e}")))?;
        Ok(Self {
            url: url.clone(),
            store,
            prefix,
            runtime: Some(runtime),
        })
    }

    /// `name`'s `/`-separated parts under the prefix (a part of its own would percent-encode
    /// the `/`).
    pub(super) fn path(&self, name: &str) -> ObjectPath {
        name.split('/')
            .fold(self.prefix.clone(), |path, part| path.join(part))
    }

    /// Runs `f` on the backend's runtime from any thread, async context or not.
    pub(super) fn run<T: Send>(&self, f: impl Future<Output = T> + Send) -> Result<T, StoreError> {
        let failed = |reason: &str| StoreError::Object {
            location: self.url.to_string(),
            reason: reason.into(),
        };
        let rt = self
            .runtime
            .as_ref()
            .ok_or_else(|| failed("the store is shut down"))?;
        std::thread::scope(|s| s.spawn(|| rt.block_on(f)).join())
            .map_err(|_| failed("the store's worker thread panicked"))
    }

    /// The object `name`, `None` if absent.
    pub(super) fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path(name);
        let got = self.run(async {
            match self.store.get(&path).await {
                Ok(r) => r.bytes().await.map(|b| Some(b.to_vec())),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })?;
        got.map_err(|e| StoreError::Object {
            location: path.to_string(),
            reason: e.to_string(),
        })
    }

    pub(super) fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let path = self.path(name);
        self.run(self.store.put(&path, PutPayload::from(bytes)))?
            .map(|_| ())
            .map_err(|e| StoreError::Object {
                location: path.to_string(),
                reason: e.to_string(),
            })
    }
}
