//! The operator's certificate authority, kept in one directory.
//!
//! ```text
//! <dir>/ca.pem        the CA certificate (give it to every device and the aggregator)
//! <dir>/ca.key        its ed25519 key (PKCS#8 PEM, mode 0600; never leaves the operator)
//! <dir>/issued.tsv    one line per issued certificate: serial (hex), name, kind
//! <dir>/crl.pem       the revocation list, re-signed at every revocation
//! ```
//!
//! Device and server keys are ed25519 as well: a device's certificate key is its long-term
//! identity, the same key that signs its SecAgg+ key adverts, so the identity is bound to the
//! certificate by construction.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, PKCS_ED25519,
    RevocationReason, RevokedCertParams, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use flock_durable::Access;

use crate::TransportError;

/// What a certificate is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertKind {
    /// A device (agent): client authentication.
    Device,
    /// The aggregator: server authentication for these DNS names or IP addresses.
    Server {
        /// Names the agents connect to (`localhost`, `127.0.0.1`, `agg.example.org`).
        names: Vec<String>,
    },
}

impl CertKind {
    fn tag(&self) -> &'static str {
        match self {
            CertKind::Device => "device",
            CertKind::Server { .. } => "server",
        }
    }
}

/// Validity of an issued certificate.
#[derive(Clone, Copy, Debug)]
pub struct Validity {
    /// Not valid before.
    pub not_before: OffsetDateTime,
    /// Not valid after.
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From one hour ago (clock skew) for `days` days.
    pub fn days(days: i64) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            not_before: now - Duration::hours(1),
            not_after: now + Duration::days(days),
        }
    }
}

/// Paths of an issued certificate and its key.
#[derive(Clone, Debug)]
pub struct Issued {
    /// `<out>/<name>.pem`.
    pub cert: PathBuf,
    /// `<out>/<name>.key` (mode 0600).
    pub key: PathBuf,
    /// Its serial number, hex.
    pub serial: String,
}

/// A certificate authority on disk.
pub struct Ca {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> TransportError {
    let context = context.into();
    move |cause| TransportError::Io { context, cause }
}

fn ca_err(e: impl std::fmt::Display) -> TransportError {
    TransportError::Ca(e.to_string())
}

/// Writes `bytes` to `path` durably (flock-durable); `secret` files are created with mode
/// 0600.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], secret: bool) -> Result<(), TransportError> {
    let access = if secret {
        Access::Private
    } else {
        Access::Shared
    };
    flock_durable::write(path, access, bytes).map_err(durable_err)
}

/// Creates `dir` (mode 0700: it holds private keys) and its missing parents.
fn create_private_dir(dir: &Path) -> Result<(), TransportError> {
    flock_durable::create_dir_all(dir, Access::Private).map_err(durable_err)
}

fn durable_err(e: flock_durable::DurableError) -> TransportError {
    TransportError::Io {
        context: format!("{} {}", e.step, e.path.display()),
        cause: e.cause,
    }
}

fn random_serial() -> Result<SerialNumber, TransportError> {
    let mut bytes = [0u8; 16];
    getrandom(&mut bytes)?;
    bytes[0] &= 0x7f; // positive
    Ok(SerialNumber::from_slice(&bytes))
}

fn getrandom(buf: &mut [u8]) -> Result<(), TransportError> {
    crate::tls::crypto_provider()
        .secure_random
        .fill(buf)
        .map_err(|_| TransportError::Ca("no system randomness".into()))
}

impl Ca {
    /// Creates a CA named `name` in `dir` (created if missing); refuses to overwrite one.
    pub fn init(dir: &Path, name: &str) -> Result<Self, TransportError> {
        let cert_path = dir.join("ca.pem");
        if cert_path.exists() {
            return Err(TransportError::Ca(format!(
                "{} already exists: refusing to replace a CA (devices trust it)",
                cert_path.display()
            )));
        }
        create_private_dir(dir)?;
        let key = KeyPair::generate_for(&PKCS_ED25519).map_err(ca_err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(ca_err)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let validity = Validity::days(3650);
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        params.serial_number = Some(random_serial()?);
        let cert = params.self_signed(&key).map_err(ca_err)?;
        write_atomic(&dir.join("ca.key"), key.serialize_pem().as_bytes(), true)?;
        write_atomic(&cert_path, cert.pem().as_bytes(), false)?;
        write_atomic(&dir.join("issued.tsv"), b"", false)?;
        let ca = Self {
            dir: dir.to_path_buf(),
            issuer: Issuer::new(params, key),
        };
        ca.write_crl(&[], 1)?;
        Ok(ca)
    }

    /// Opens the CA in `dir`.
    pub fn open(dir: &Path) -> Result<Self, TransportError> {
        let read = |file: &str| {
            let path = dir.join(file);
            std::fs::read_to_string(&path).map_err(|e| TransportError::Credentials {
                path,
                reason: e.to_string(),
            })
        };
        let key = KeyPair::from_pem(&read("ca.key")?).map_err(|e| TransportError::Credentials {
            path: dir.join("ca.key"),
            reason: e.to_string(),
        })?;
        let issuer = Issuer::from_ca_cert_pem(&read("ca.pem")?, key).map_err(|e| {
            TransportError::Credentials {
                path: dir.join("ca.pem"),
                reason: e.to_string(),
            }
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            issuer,
        })
    }

    /// The CA certificate's path.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The revocation list's path.
    pub fn crl_path(&self) -> PathBuf {
        self.dir.join("crl.pem")
    }

    /// Issues a certificate for `name` with a fresh ed25519 key, writing `<out>/<name>.pem` and
    /// `<out>/<name>.key`. Names are letters, digits, `-`, `_` and `.`.
    pub fn issue(
        &self,
        name: &str,
        kind: &CertKind,
        validity: Validity,
        out: &Path,
    ) -> Result<Issued, TransportError> {
        if name.is_empty()
            || name.starts_with('.')
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(TransportError::Ca(format!(
                "name {name:?}: use letters, digits, '-', '_' and '.'"
            )));
        }
        if self.issued()?.iter().any(|(_, n, _)| n == name) {
            return Err(TransportError::Ca(format!(
                "a certificate named {name:?} was already issued (revoke it and pick a new name)"
            )));
        }
        let key = KeyPair::generate_for(&PKCS_ED25519).map_err(ca_err)?;
        let sans = match kind {
            CertKind::Device => vec![],
            CertKind::Server { names } => names.clone(),
        };
        let mut params = CertificateParams::new(sans).map_err(ca_err)?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![match kind {
            CertKind::Device => ExtendedKeyUsagePurpose::ClientAuth,
            CertKind::Server { .. } => ExtendedKeyUsagePurpose::ServerAuth,
        }];
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        let serial = random_serial()?;
        params.serial_number = Some(serial.clone());
        let cert = params.signed_by(&key, &self.issuer).map_err(ca_err)?;
        create_private_dir(out)?;
        let issued = Issued {
            cert: out.join(format!("{name}.pem")),
            key: out.join(format!("{name}.key")),
            serial: hex::encode(serial.to_bytes()),
        };
        write_atomic(&issued.key, key.serialize_pem().as_bytes(), true)?;
        write_atomic(&issued.cert, cert.pem().as_bytes(), false)?;
        let mut log = std::fs::read_to_string(self.dir.join("issued.tsv"))
            .map_err(io("reading issued.tsv"))?;
        log.push_str(&format!("{}\t{name}\t{}\n", issued.serial, kind.tag()));
        write_atomic(&self.dir.join("issued.tsv"), log.as_bytes(), false)?;
        Ok(issued)
    }

    /// Revokes the certificate issued as `name` and re-signs the CRL. Returns its serial.
    pub fn revoke(&self, name: &str) -> Result<String, TransportError> {
        let issued = self.issued()?;
        let serial = issued
            .iter()
            .find(|(_, n, _)| n == name)
            .map(|(s, _, _)| s.clone())
            .ok_or_else(|| {
                TransportError::Ca(format!("no certificate named {name:?} was issued"))
            })?;
        let revoked_path = self.dir.join("revoked.tsv");
        let mut revoked = std::fs::read_to_string(&revoked_path).unwrap_or_default();
        if !revoked.lines().any(|l| l == serial) {
            revoked.push_str(&serial);
            revoked.push('\n');
            write_atomic(&revoked_path, revoked.as_bytes(), false)?;
        }
        let serials: Vec<String> = revoked.lines().map(str::to_string).collect();
        self.write_crl(&serials, serials.len() as u64 + 1)?;
        Ok(serial)
    }

    /// `(serial, name, kind)` of every issued certificate.
    pub fn issued(&self) -> Result<Vec<(String, String, String)>, TransportError> {
        let text = std::fs::read_to_string(self.dir.join("issued.tsv"))
            .map_err(io("reading issued.tsv"))?;
        Ok(text
            .lines()
            .filter_map(|l| {
                let mut f = l.split('\t');
                Some((
                    f.next()?.to_string(),
                    f.next()?.to_string(),
                    f.next()?.to_string(),
                ))
            })
            .collect())
    }

    fn write_crl(&self, serials: &[String], number: u64) -> Result<(), TransportError> {
        let now = OffsetDateTime::now_utc();
        let revoked_certs = serials
            .iter()
            .map(|s| {
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&hex::decode(s).map_err(|_| {
                        TransportError::Ca(format!("serial {s:?} in revoked.tsv is not hex"))
                    })?),
                    revocation_time: now,
                    reason_code: Some(RevocationReason::Unspecified),
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, TransportError>>()?;
        let crl = CertificateRevocationListParams {
            this_update: now - Duration::hours(1),
            next_update: now + Duration::days(3650),
            crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&self.issuer)
        .map_err(ca_err)?;
        write_atomic(
            &self.crl_path(),
            crl.pem().map_err(ca_err)?.as_bytes(),
            false,
        )
    }
}
