//! The demo's child processes: the aggregator and the agents, each this same executable
//! re-executed with a hidden subcommand (`flock-demo aggregator|agent --config FILE`), its
//! standard output and error appended to `logs/<name>.log`. [`Proc`] starts, polls, kills
//! (SIGKILL: a device that crashes) and stops (SIGTERM, then SIGKILL) one of them;
//! [`Processes`] holds them all and stops every one still running when it is dropped, on every
//! exit path of the demo.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

/// How long children get to exit after SIGTERM before they are killed.
const GRACE: Duration = Duration::from_secs(5);

/// What a child process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `flock-demo aggregator`.
    Aggregator,
    /// `flock-demo agent`.
    Agent,
}

impl Kind {
    fn subcommand(self) -> &'static str {
        match self {
            Kind::Aggregator => "aggregator",
            Kind::Agent => "agent",
        }
    }
}

/// One child process (running or not).
#[derive(Debug)]
pub(crate) struct Proc {
    /// `aggregator` or `agent-i`.
    pub(crate) name: String,
    kind: Kind,
    config: PathBuf,
    /// `logs/<name>.log`.
    pub(crate) log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    /// A process that will run `kind` with `config`, logging into `logs/<name>.log` of `root`.
    pub(crate) fn new(root: &Path, name: &str, kind: Kind, config: &Path) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            config: config.to_path_buf(),
            log: root.join("logs").join(format!("{name}.log")),
            child: None,
        }
    }

    /// Starts it (again); its output is appended to its log.
    pub(crate) fn spawn(&mut self) -> anyhow::Result<()> {
        let exe = std::env::current_exe().context("finding the flock-demo executable")?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let err = log.try_clone()?;
        let mut cmd = Command::new(exe);
        cmd.arg(self.kind.subcommand())
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        if let Some(dir) = self.config.parent() {
            cmd.current_dir(dir);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", self.name))?;
        self.child = Some(child);
        Ok(())
    }

    /// Whether it is running (as far as the last [`Proc::poll`] knows).
    pub(crate) fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Its exit status if it has exited since the last poll (it then counts as not running).
    pub(crate) fn poll(&mut self) -> Option<ExitStatus> {
        let status = match self.child.as_mut()?.try_wait() {
            Ok(Some(status)) => status,
            Ok(None) => return None,
            // Cannot be waited for: treat as gone.
            Err(_) => return self.child.take().and_then(|mut c| c.wait().ok()),
        };
        self.child = None;
        Some(status)
    }

    /// Kills it at once (SIGKILL: a crash, nothing is cleaned up) and reaps it.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Asks it to stop (SIGTERM).
    fn ask_to_stop(&self) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }

    /// The last `n` lines of its log.
    pub(crate) fn tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// The aggregator and the agents; whatever still runs is stopped on drop.
#[derive(Debug)]
pub(crate) struct Processes {
    /// The aggregator.
    pub(crate) aggregator: Proc,
    /// Agent i.
    pub(crate) agents: Vec<Proc>,
}

impl Processes {
    /// Every process, the aggregator first.
    fn all(&mut self) -> impl Iterator<Item = &mut Proc> {
        std::iter::once(&mut self.aggregator).chain(self.agents.iter_mut())
    }

    /// Stops every running process: SIGTERM, then SIGKILL for those still running after a
    /// grace period.
    pub(crate) fn stop_all(&mut self) {
        for p in self.all() {
            p.ask_to_stop();
        }
        let deadline = Instant::now() + GRACE;
        while Instant::now() < deadline && self.all().any(|p| p.poll().is_none() && p.is_running())
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        for p in self.all() {
            p.kill();
        }
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        self.stop_all();
    }
}
