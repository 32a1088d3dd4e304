//! The contributors Merkle tree exactly as `FlTask.contributorsMerkleRoot` builds it, with
//! proofs that OpenZeppelin's `MerkleProof.verify` accepts.
//!
//! leaf = `keccak256(abi.encodePacked(address))`; parent = `keccak256(min(a, b) ‖ max(a, b))`
//! (OpenZeppelin `Hashes.commutativeKeccak256`); the odd last node of a level is carried up
//! unchanged; the root of one leaf is that leaf; the root of no leaf is zero. The tree is built
//! in the order given (the contract refuses an anchor whose list is not strictly ascending, see
//! [`sorted_contributors`]).

use alloy::primitives::{Address, B256, keccak256};

/// Leaf of `address`: `keccak256(abi.encodePacked(address))`.
pub fn leaf(address: Address) -> B256 {
    keccak256(address.as_slice())
}

/// OpenZeppelin's `Hashes.commutativeKeccak256`: the hash of the smaller value, then the larger.
pub fn commutative_keccak(a: B256, b: B256) -> B256 {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(lo.as_slice());
    buf[32..].copy_from_slice(hi.as_slice());
    keccak256(buf)
}

/// Root over `contributors` in the given order (zero for an empty list).
pub fn merkle_root(contributors: &[Address]) -> B256 {
    let mut level: Vec<B256> = contributors.iter().copied().map(leaf).collect();
    if level.is_empty() {
        return B256::ZERO;
    }
    while level.len() > 1 {
        level = next_level(&level);
    }
    level[0]
}

/// Sibling hashes from the leaf of `contributors[index]` up to the root (a node carried up
/// unchanged has no sibling at that level and adds nothing). `None` if `index` is out of range.
pub fn merkle_proof(contributors: &[Address], index: usize) -> Option<Vec<B256>> {
    if index >= contributors.len() {
        return None;
    }
    let mut level: Vec<B256> = contributors.iter().copied().map(leaf).collect();
    let mut pos = index;
    let mut proof = Vec::new();
    while level.len() > 1 {
        let carried = level.len() % 2 == 1 && pos == level.len() - 1;
        if !carried {
            proof.push(level[pos ^ 1]);
        }
        pos /= 2;
        level = next_level(&level);
    }
    Some(proof)
}

/// OpenZeppelin's `MerkleProof.verify` with commutative hashing: folds `proof` into `leaf`
/// and compares with `root`.
pub fn verify_proof(proof: &[B256], root: B256, leaf: B256) -> bool {
    proof
        .iter()
        .fold(leaf, |acc, p| commutative_keccak(acc, *p))
        == root
}

/// `contributors` sorted strictly ascending with duplicates dropped: the order `anchorCandidate`
/// requires.
pub fn sorted_contributors(contributors: &[Address]) -> Vec<Address> {
    let mut out = contributors.to_vec();
    out.sort_unstable();
    out.dedup();
    out
}

fn next_level(level: &[B256]) -> Vec<B256> {
    let mut next: Vec<B256> = level
        .chunks_exact(2)
        .map(|pair| commutative_keccak(pair[0], pair[1]))
        .collect();
    if let Some(last) = level.chunks_exact(2).remainder().first() {
        next.push(*last);
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: usize) -> Vec<Address> {
        (0..n)
            .map(|i| Address::from_word(keccak256((i as u64).to_be_bytes())))
            .collect()
    }

    #[test]
    fn one_leaf_is_the_root_and_empty_is_zero() {
        let a = addrs(1);
        assert_eq!(merkle_root(&a), leaf(a[0]));
        assert_eq!(merkle_root(&[]), B256::ZERO);
        assert_eq!(merkle_proof(&a, 0), Some(vec![]));
    }

    #[test]
    fn three_leaves_carry_the_last_up() {
        let a = addrs(3);
        let (l0, l1, l2) = (leaf(a[0]), leaf(a[1]), leaf(a[2]));
        let expected = commutative_keccak(commutative_keccak(l0, l1), l2);
        assert_eq!(merkle_root(&a), expected);
        assert_eq!(merkle_proof(&a, 2), Some(vec![commutative_keccak(l0, l1)]));
    }

    #[test]
    fn every_proof_verifies_and_a_wrong_leaf_does_not() {
        for n in 1..=33 {
            let a = addrs(n);
            let root = merkle_root(&a);
            for (i, addr) in a.iter().enumerate() {
                let proof = merkle_proof(&a, i).unwrap_or_default();
                assert!(verify_proof(&proof, root, leaf(*addr)), "n={n} i={i}");
                let stranger = leaf(Address::repeat_byte(0xee));
                assert!(!verify_proof(&proof, root, stranger), "n={n} i={i}");
            }
            assert_eq!(merkle_proof(&a, n), None);
        }
    }

    #[test]
    fn sorting_drops_duplicates() {
        let a = addrs(4);
        let mixed = vec![a[3], a[1], a[3], a[0]];
        let sorted = sorted_contributors(&mixed);
        assert_eq!(sorted.len(), 3);
        assert!(sorted.windows(2).all(|w| w[0] < w[1]));
    }
}
