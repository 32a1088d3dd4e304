//! The subcommands of the `flock-agent` binary beyond `doctor`, each in its own file. They
//! parse arguments, call the library and print; no logic of their own.

#[cfg(feature = "chain")]
pub(crate) mod chain;
pub(crate) mod partition;
#[cfg(feature = "train")]
pub(crate) mod service;
#[cfg(feature = "train")]
pub(crate) mod train;
