//! End-to-end tests of flock-edge live in `tests/tests/`: each drives several crates (and, as
//! the system grows, real binaries, QUIC on loopback and a local EVM node) the way a deployment
//! does. This library is intentionally empty.
