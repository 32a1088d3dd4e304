//! Subcommands of the `flock-aggregator` binary, one file each: they parse arguments, call the
//! libraries and print.

pub(crate) mod ca;
pub(crate) mod chain;
pub(crate) mod serve;
