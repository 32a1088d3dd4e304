//! The services' shutdown signal: SIGTERM (systemd stopping the unit) or Ctrl-C.

/// Resolves when the process is asked to stop: SIGTERM or Ctrl-C on Unix, Ctrl-C elsewhere.
/// Needs a tokio runtime.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
