//! flock-aggregator as a library: the task config ([`config`]), the content-addressed model
//! store ([`store`]) and the service that runs a task's rounds over QUIC ([`service`]).

pub mod config;
pub mod service;
pub mod store;
