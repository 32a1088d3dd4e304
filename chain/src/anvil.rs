//! A local anvil node as a child process: found on disk (`FLOCK_ANVIL`, the npm platform
//! package under `chain/node_modules`, `chain/node_modules/.bin/anvil`, `PATH`), started on a
//! free loopback port, stopped gracefully (SIGTERM, so `--state` is written) or killed, started
//! again on the same port, and killed when dropped.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// How long anvil may take to start listening, and to exit after SIGTERM.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
const STDERR_TAIL: usize = 4096;

/// Why anvil could not be found, started or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnvilError {
    /// No anvil binary in any of the places looked at.
    #[error(
        "anvil not found; looked at: {}. Run `cd chain && npm ci` (or scripts/setup), or set FLOCK_ANVIL",
        .0.join(", ")
    )]
    NotFound(Vec<String>),
    /// The process could not be spawned or signalled.
    #[error("anvil {what}: {source}")]
    Io {
        /// What we were doing.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// anvil exited before it listened.
    #[error("anvil exited early ({status}): {stderr}")]
    Exited {
        /// Its exit status.
        status: String,
        /// The end of its standard error.
        stderr: String,
    },
    /// anvil did not listen, or did not stop, in time.
    #[error("anvil did not {0} in time")]
    Timeout(&'static str),
    /// The node is not running (stopped).
    #[error("anvil is not running")]
    NotRunning,
}

/// How to start anvil.
#[derive(Debug, Clone, Default)]
pub struct AnvilOptions {
    /// `--state <file>`: load the chain from this file if it exists, write it on exit.
    pub state_file: Option<PathBuf>,
    /// More command-line arguments.
    pub args: Vec<String>,
}

/// A running (or stopped) anvil child process; killed on drop.
#[derive(Debug)]
pub struct Anvil {
    binary: PathBuf,
    options: AnvilOptions,
    port: u16,
    child: Option<Child>,
    stderr: Arc<Mutex<String>>,
}

impl Anvil {
    /// Finds the anvil binary: `$FLOCK_ANVIL`, the npm platform package
    /// `chain/node_modules/@foundry-rs/anvil-<os>-<arch>/bin/anvil`,
    /// `chain/node_modules/.bin/anvil`, then `anvil` on `PATH`.
    pub fn find_binary() -> Result<PathBuf, AnvilError> {
        let mut looked = Vec::new();
        if let Some(p) = std::env::var_os("FLOCK_ANVIL") {
            let p = PathBuf::from(p);
            if p.is_file() {
                return Ok(p);
            }
            looked.push(format!("FLOCK_ANVIL={}", p.display()));
        } else {
            looked.push("FLOCK_ANVIL (unset)".to_owned());
        }
        let modules = Path::new(env!("CARGO_MANIFEST_DIR")).join("node_modules");
        let candidates = [
            modules.join(format!("@foundry-rs/anvil-{}/bin/anvil", platform())),
            modules.join(".bin/anvil"),
        ];
        for c in candidates {
            if c.is_file() {
                return Ok(c);
            }
            looked.push(c.display().to_string());
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        for dir in std::env::split_paths(&path) {
            let c = dir.join("anvil");
            if c.is_file() {
                return Ok(c);
            }
        }
        looked.push("anvil on PATH".to_owned());
        Err(AnvilError::NotFound(looked))
    }

    /// Starts anvil on a free loopback port.
    pub fn spawn(options: AnvilOptions) -> Result<Self, AnvilError> {
        let mut anvil = Self {
            binary: Self::find_binary()?,
            options,
            port: 0,
            child: None,
            stderr: Arc::default(),
        };
        anvil.start()?;
        Ok(anvil)
    }

    /// The HTTP endpoint, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port it listens on (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The binary in use.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Whether the process is alive.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Stops the node gracefully: SIGTERM (anvil writes its `--state` file), then waits for it
    /// to exit; kills it if it does not within 15 s.
    pub fn stop(&mut self) -> Result<(), AnvilError> {
        let Some(mut child) = self.child.take() else {
            return Err(AnvilError::NotRunning);
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .map_err(|source| AnvilError::Io {
                what: "SIGTERM (kill)",
                source,
            })?;
        let deadline = Instant::now() + STOP_TIMEOUT;
        while status.success() && Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(AnvilError::Timeout("stop"))
    }

    /// Kills the node at once (no state written).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the node again on the same port with the same options (a `--state` file
    /// restores the chain).
    pub fn restart(&mut self) -> Result<(), AnvilError> {
        self.kill();
        self.start()
    }

    fn start(&mut self) -> Result<(), AnvilError> {
        let mut cmd = Command::new(&self.binary);
        cmd.args(["--host", "127.0.0.1", "--port", &self.port.to_string()]);
        if let Some(state) = &self.options.state_file {
            cmd.arg("--state").arg(state);
        }
        cmd.args(&self.options.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|source| AnvilError::Io {
            what: "spawn",
            source,
        })?;
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || watch_stdout(out, tx));
        }
        if let Some(err) = child.stderr.take() {
            let tail = Arc::clone(&self.stderr);
            std::thread::spawn(move || keep_tail(err, tail));
        }
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                // Give the stderr thread a moment to collect the reason.
                std::thread::sleep(Duration::from_millis(50));
                let stderr = self.stderr.lock().map(|s| s.clone()).unwrap_or_default();
                return Err(AnvilError::Exited {
                    status: status.to_string(),
                    stderr,
                });
            }
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(port) => {
                    self.port = port;
                    self.child = Some(child);
                    return Ok(());
                }
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(AnvilError::Timeout("listen"));
                }
            }
        }
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The npm platform package's suffix for this machine: `linux-amd64`, `darwin-arm64`, ...
fn platform() -> String {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        "windows" => "win32",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("{os}-{arch}")
}

/// Reads anvil's stdout: reports the port of its "Listening on host:port" line, then drains
/// the rest so that anvil never blocks on a full pipe.
fn watch_stdout(out: impl Read, tx: mpsc::Sender<u16>) {
    let mut reported = false;
    for line in BufReader::new(out).lines() {
        let Ok(line) = line else { break };
        if !reported
            && let Some(rest) = line.trim().strip_prefix("Listening on ")
            && let Some(port) = rest.rsplit(':').next().and_then(|p| p.trim().parse().ok())
        {
            reported = tx.send(port).is_ok();
        }
    }
}

fn keep_tail(err: impl Read, tail: Arc<Mutex<String>>) {
    for line in BufReader::new(err).lines() {
        let Ok(line) = line else { break };
        if let Ok(mut t) = tail.lock() {
            t.push_str(&line);
            t.push('\n');
            if t.len() > STDERR_TAIL {
                let cut = t.len() - STDERR_TAIL;
                let cut = (cut..t.len()).find(|&i| t.is_char_boundary(i)).unwrap_or(0);
                t.drain(..cut);
            }
        }
    }
}
