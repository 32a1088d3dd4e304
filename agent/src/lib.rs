//! flock-agent: the part of flock-edge that runs next to a device's data.
//!
//! Today the library holds the kernel self-check ([`kernel_check`]) that tells an operator
//! whether this machine masks updates correctly on its CPU and, when one is present, its GPU.
//! Training, the protocol client and the transport build on it.

pub mod kernel_check;
