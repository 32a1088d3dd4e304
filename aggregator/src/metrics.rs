//! The aggregator's operational face: Prometheus metrics (`GET /metrics`, text format) and a
//! health check (`GET /healthz`, JSON) on an optional TCP address (`[server] metrics`).
//!
//! [`Metrics`] is shared by the round loop and the connection tasks; every value is an atomic,
//! so scraping never waits on a round.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::Serialize;

/// Every metric the aggregator exports, all prefixed `flock_aggregator_`.
pub struct Metrics {
    registry: Registry,
    task: String,
    rounds_total: u64,
    /// Rounds finished (off chain: each turned into a stored model; on chain: finalised).
    pub rounds_completed: Counter,
    /// On chain: finished rounds whose candidate did not become the model (rejected or void).
    pub rounds_rejected: Counter,
    /// Round attempts that ended without a model (below threshold, timeouts).
    pub rounds_aborted: Counter,
    /// Round attempts started.
    pub round_attempts: Counter,
    /// The last completed round.
    pub round: Gauge,
    /// The round being run, 0 between rounds.
    pub round_in_progress: Gauge,
    /// Agents with an open connection.
    pub agents_connected: Gauge,
    /// Contributors of the last completed round.
    pub last_contributors: Gauge,
    /// Wall time of completed rounds.
    pub round_seconds: Histogram,
    /// SecAgg+ messages refused: by the protocol server (wrong phase, not a participant, bad
    /// signature...) or for an attempt that is not running.
    pub refused_messages: Counter,
    /// Streams closed because their frame was unreadable (garbage, truncated, oversized).
    pub bad_streams: Counter,
    /// Connections refused during the TLS handshake (unknown CA, expired, revoked...).
    pub refused_handshakes: Counter,
    /// Bytes of model files sent to agents.
    pub model_bytes_served: Counter,
}

impl Metrics {
    /// Registers every metric for `task`, which runs `rounds_total` rounds.
    pub fn new(task: &str, rounds_total: u64) -> Self {
        let mut registry = Registry::with_prefix("flock_aggregator");
        let mut m = Self {
            registry: Registry::default(),
            task: task.to_owned(),
            rounds_total,
            rounds_completed: Counter::default(),
            rounds_rejected: Counter::default(),
            rounds_aborted: Counter::default(),
            round_attempts: Counter::default(),
            round: Gauge::default(),
            round_in_progress: Gauge::default(),
            agents_connected: Gauge::default(),
            last_contributors: Gauge::default(),
            round_seconds: Histogram::new(exponential_buckets(0.05, 2.0, 14)),
            refused_messages: Counter::default(),
            bad_streams: Counter::default(),
            refused_handshakes: Counter::default(),
            model_bytes_served: Counter::default(),
        };
        let counters = [
            (
                "rounds_completed",
                "Rounds finished (on chain: finalised)",
                &m.rounds_completed,
            ),
            (
                "rounds_rejected",
                "Rounds on chain whose candidate was rejected or void",
                &m.rounds_rejected,
            ),
            (
                "rounds_aborted",
                "Round attempts that ended without a model",
                &m.rounds_aborted,
            ),
            (
                "round_attempts",
                "Round attempts started",
                &m.round_attempts,
            ),
            (
                "refused_messages",
                "SecAgg+ messages refused by the protocol server",
                &m.refused_messages,
            ),
            (
                "bad_streams",
                "Streams closed because their frame was unreadable",
                &m.bad_streams,
            ),
            (
                "refused_handshakes",
                "Connections refused during the TLS handshake",
                &m.refused_handshakes,
            ),
            (
                "model_bytes_served",
                "Bytes of model files sent to agents",
                &m.model_bytes_served,
            ),
        ];
        for (name, help, c) in counters {
            registry.register(name, help, c.clone());
        }
        let gauges = [
            ("round", "The last completed round", &m.round),
            (
                "round_in_progress",
                "The round being run, 0 between rounds",
                &m.round_in_progress,
            ),
            (
                "agents_connected",
                "Agents with an open connection",
                &m.agents_connected,
            ),
            (
                "last_contributors",
                "Contributors of the last completed round",
                &m.last_contributors,
            ),
        ];
        for (name, help, g) in gauges {
            registry.register(name, help, g.clone());
        }
        registry.register(
            "round_seconds",
            "Wall time of completed rounds",
            m.round_seconds.clone(),
        );
        m.registry = registry;
        m
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// What `/healthz` answers.
    pub fn health(&self) -> Health {
        let in_progress = self.round_in_progress.get();
        Health {
            status: "serving",
            task: self.task.clone(),
            round: self.round.get().max(0) as u64,
            rounds: self.rounds_total,
            round_in_progress: (in_progress > 0).then_some(in_progress as u64),
            agents_connected: self.agents_connected.get().max(0) as u64,
        }
    }
}

/// The body of `/healthz`.
#[derive(Clone, Debug, Serialize)]
pub struct Health {
    /// Always `serving` while the process answers.
    pub status: &'static str,
    /// The task's name.
    pub task: String,
    /// The last completed round.
    pub round: u64,
    /// Rounds the task runs.
    pub rounds: u64,
    /// The round being run, if any.
    pub round_in_progress: Option<u64>,
    /// Agents with an open connection.
    pub agents_connected: u64,
}

/// Serves `/metrics` and `/healthz` on `listener` until the task is dropped.
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(health_page))
        .with_state(metrics);
    axum::serve(listener, app).await
}

async fn metrics_page(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
}

async fn health_page(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    axum::Json(m.health())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_carries_every_metric_with_its_value() {
        let m = Metrics::new("t", 5);
        m.rounds_completed.inc();
        m.round.set(3);
        m.round_seconds.observe(0.3);
        let text = m.encode();
        assert!(
            text.contains("flock_aggregator_rounds_completed_total 1"),
            "{text}"
        );
        assert!(text.contains("flock_aggregator_round 3"), "{text}");
        assert!(
            text.contains("flock_aggregator_round_seconds_count 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
        let h = m.health();
        assert_eq!((h.round, h.rounds, h.round_in_progress), (3, 5, None));
    }
}
