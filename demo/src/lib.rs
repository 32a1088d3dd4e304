//! `flock-demo`: the main job of flock-edge in one command.
//!
//! The library owns the demo's report: what a run did, round by round and agent by agent,
//! written as `rounds.json`, `metrics.csv`, three PNG plots and a plain-text table
//! ([`report`]). The orchestration (the chain, the aggregator and agent processes, the
//! baseline, and filling in a [`report::RunReport`]) is the `flock-demo` binary's
//! (`src/main.rs` and its modules).

pub mod report;
