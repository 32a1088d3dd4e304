//! `flock-aggregator ca …`: the operator's certificate authority (create it, issue device and
//! aggregator certificates, revoke them, list them). The files are described in
//! `flock_transport::pki`.

use std::path::PathBuf;

use anyhow::Context;
use flock_transport::pki::{Ca, CertKind, Validity};

/// `flock-aggregator ca` subcommands.
#[derive(clap::Subcommand)]
pub(crate) enum CaCommand {
    /// Create a CA in a directory (refuses to replace an existing one).
    Init {
        /// The CA's directory.
        #[arg(long, default_value = "ca")]
        dir: PathBuf,
        /// The CA's common name.
        #[arg(long, default_value = "flock-edge federation CA")]
        name: String,
    },
    /// Issue a certificate and key for a device (or, with --server-name, for the aggregator).
    Issue {
        /// The CA's directory.
        #[arg(long, default_value = "ca")]
        dir: PathBuf,
        /// The certificate's name (files `<out>/<name>.pem` and `<out>/<name>.key`).
        #[arg(long)]
        name: String,
        /// Make a server certificate for these DNS names or IP addresses (repeat or
        /// comma-separate); without it, a device certificate.
        #[arg(long = "server-name", value_delimiter = ',')]
        server_names: Vec<String>,
        /// Days of validity.
        #[arg(long, default_value_t = 365)]
        days: i64,
        /// Where to write the certificate and key.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// Revoke a certificate by name; the aggregator reloads the CRL without a restart.
    Revoke {
        /// The CA's directory.
        #[arg(long, default_value = "ca")]
        dir: PathBuf,
        /// The name it was issued under.
        #[arg(long)]
        name: String,
    },
    /// List the issued certificates.
    List {
        /// The CA's directory.
        #[arg(long, default_value = "ca")]
        dir: PathBuf,
    },
}

pub(crate) fn run(command: &CaCommand) -> anyhow::Result<()> {
    match command {
        CaCommand::Init { dir, name } => {
            let ca = Ca::init(dir, name).context("ca init")?;
            println!("CA {name:?} created: {}", ca.cert_path().display());
            println!("revocation list: {}", ca.crl_path().display());
        }
        CaCommand::Issue {
            dir,
            name,
            server_names,
            days,
            out,
        } => {
            let ca = Ca::open(dir)?;
            let kind = if server_names.is_empty() {
                CertKind::Device
            } else {
                CertKind::Server {
                    names: server_names.clone(),
                }
            };
            if *days < 1 {
                anyhow::bail!("--days is {days}: a certificate must be valid at least one day");
            }
            let issued = ca.issue(name, &kind, Validity::days(*days), out)?;
            println!(
                "issued {name} (serial {}): {} and {}",
                issued.serial,
                issued.cert.display(),
                issued.key.display()
            );
        }
        CaCommand::Revoke { dir, name } => {
            let ca = Ca::open(dir)?;
            let serial = ca.revoke(name)?;
            println!(
                "revoked {name} (serial {serial}); {} updated",
                ca.crl_path().display()
            );
        }
        CaCommand::List { dir } => {
            let ca = Ca::open(dir)?;
            let revoked = std::fs::read_to_string(dir.join("revoked.tsv")).unwrap_or_default();
            for (serial, name, kind) in ca.issued()? {
                let state = if revoked.lines().any(|l| l == serial) {
                    "revoked"
                } else {
                    "valid"
                };
                println!("{serial}  {kind:<6}  {state:<7}  {name}");
            }
        }
    }
    Ok(())
}
