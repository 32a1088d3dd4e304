//! Device identities: off chain, an agent is its device's ed25519 public key (the key of its TLS
//! client certificate) and the aggregator names it by its `ClientId`; on chain, a participant is
//! an EVM address that registered that key with `join(amount, identityKey)`. This module derives
//! the `ClientId` from a key exactly as `flock_protocol::ClientId::from_identity` does (without
//! depending on flock-protocol), so the aggregator can map a round's roster to its SecAgg+
//! clients and back.

use alloy::primitives::B256;
use sha2::{Digest, Sha256};

/// A 32-byte ed25519 public key as registered on chain (`identityOf(address)`).
pub type IdentityKey = B256;

/// The `ClientId` bytes of `identity`: the first 8 bytes of `SHA-256(identity)`.
pub fn client_id_bytes(identity: &[u8; 32]) -> [u8; 8] {
    let digest = Sha256::digest(identity);
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    b
}

/// The `ClientId` of `identity` as flock-protocol's `ClientId(u64)`: the first 8 bytes of
/// `SHA-256(identity)` read as a big-endian `u64`.
pub fn client_id(identity: &[u8; 32]) -> u64 {
    u64::from_be_bytes(client_id_bytes(identity))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors from `ClientId::from_identity` (protocol/src/config.rs: SHA-256 of the key, first
    /// 8 bytes big-endian), cross-checked with `sha256sum`.
    #[test]
    fn client_id_matches_the_protocol() {
        let counting: [u8; 32] = std::array::from_fn(|i| i as u8);
        assert_eq!(
            client_id_bytes(&counting),
            [0x63, 0x0d, 0xcd, 0x29, 0x66, 0xc4, 0x33, 0x66]
        );
        assert_eq!(client_id(&counting), 7_137_586_562_153_591_654);
        assert_eq!(client_id(&[0x42; 32]), 0x425e_d4e4_a36b_30ea);
        assert_eq!(client_id(&[0x42; 32]), 4_782_493_932_773_388_522);
        assert_eq!(
            client_id(&B256::repeat_byte(0x42).0),
            client_id(&[0x42; 32])
        );
    }
}
