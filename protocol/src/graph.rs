//! The neighbour graph: who shares secrets with whom and whose masks cancel whose.
//!
//! Clients are placed on a ring in the order of a permutation drawn from the round's public
//! seed (ChaCha20 keystream, Fisher–Yates), and each is joined to the `k` nearest places: a
//! Harary graph `H(k, n)`. For even `k` that is `k/2` places on each side; for odd `k` (only
//! possible with even `n`) also the opposite place on the ring; `k = n − 1` is the complete
//! graph. Every party computes the same graph from the round configuration alone.

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

/// Why a graph cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GraphError {
    /// `k` must be below `n`.
    #[error("degree {degree} needs more than {clients} clients")]
    DegreeTooLarge {
        /// `k`.
        degree: u32,
        /// `n`.
        clients: u32,
    },
    /// A `k`-regular graph on `n` nodes needs `n·k` even.
    #[error(
        "no {degree}-regular graph exists on {clients} clients (odd degree needs an even count)"
    )]
    OddDegreeOddCount {
        /// `k`.
        degree: u32,
        /// `n`.
        clients: u32,
    },
    /// A graph needs at least two clients and one neighbour each.
    #[error("a round needs at least 2 clients and degree at least 1")]
    TooSmall,
}

/// A `k`-regular neighbour graph over client indices `0..n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighbourGraph {
    /// Sorted neighbour lists, one per client index.
    neighbours: Vec<Vec<u32>>,
}

impl NeighbourGraph {
    /// Builds the graph for `n` clients of degree `k` from the round's public seed.
    ///
    /// # Errors
    /// [`GraphError`] when no such regular graph exists.
    pub fn new(n: u32, k: u32, seed: [u8; 32]) -> Result<Self, GraphError> {
        if n < 2 || k == 0 {
            return Err(GraphError::TooSmall);
        }
        if k >= n {
            return Err(GraphError::DegreeTooLarge {
                degree: k,
                clients: n,
            });
        }
        if k % 2 == 1 && n % 2 == 1 {
            return Err(GraphError::OddDegreeOddCount {
                degree: k,
                clients: n,
            });
        }
        // place[p] = client at ring position p.
        let mut place: Vec<u32> = (0..n).collect();
        let mut rng = ChaCha20Rng::from_seed(seed);
        for i in (1..n as usize).rev() {
            let j = uniform_below(&mut rng, i as u64 + 1) as usize;
            place.swap(i, j);
        }
        let mut neighbours = vec![Vec::with_capacity(k as usize); n as usize];
        let n64 = u64::from(n);
        for p in 0..n64 {
            let me = place[p as usize];
            let mut add = |offset: u64| {
                let q = ((p + offset) % n64) as usize;
                neighbours[me as usize].push(place[q]);
            };
            if k == n - 1 {
                (1..n64).for_each(&mut add);
            } else {
                for d in 1..=u64::from(k / 2) {
                    add(d);
                    add(n64 - d);
                }
                if k % 2 == 1 {
                    add(n64 / 2);
                }
            }
        }
        for list in &mut neighbours {
            list.sort_unstable();
            list.dedup();
        }
        Ok(Self { neighbours })
    }

    /// Number of clients.
    #[must_use]
    pub fn len(&self) -> usize {
        self.neighbours.len()
    }

    /// Whether the graph has no clients (never true for a built graph).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.neighbours.is_empty()
    }

    /// The sorted neighbours of client index `u` (empty for an unknown index).
    #[must_use]
    pub fn neighbours(&self, u: u32) -> &[u32] {
        self.neighbours.get(u as usize).map_or(&[], Vec::as_slice)
    }

    /// Whether `u` and `v` are neighbours.
    #[must_use]
    pub fn are_neighbours(&self, u: u32, v: u32) -> bool {
        self.neighbours(u).binary_search(&v).is_ok()
    }
}

/// Uniform in `0..bound` by rejection (no modulo bias).
fn uniform_below(rng: &mut ChaCha20Rng, bound: u64) -> u64 {
    let zone = u64::MAX - (u64::MAX % bound);
    loop {
        let x = rng.next_u64();
        if x < zone {
            return x % bound;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_regular(g: &NeighbourGraph, k: usize) {
        for u in 0..g.len() as u32 {
            let ns = g.neighbours(u);
            assert_eq!(ns.len(), k, "client {u}");
            assert!(!ns.contains(&u), "client {u} is its own neighbour");
            for &v in ns {
                assert!(g.are_neighbours(v, u), "{u}->{v} is not symmetric");
            }
        }
    }

    #[test]
    fn graphs_are_regular_and_symmetric() {
        for (n, k) in [
            (2, 1),
            (5, 4),
            (10, 4),
            (100, 3),
            (100, 10),
            (101, 8),
            (1000, 40),
        ] {
            check_regular(&NeighbourGraph::new(n, k, [7; 32]).unwrap(), k as usize);
        }
    }

    #[test]
    fn the_seed_decides_the_graph_and_everyone_agrees() {
        let a = NeighbourGraph::new(50, 6, [1; 32]).unwrap();
        assert_eq!(a, NeighbourGraph::new(50, 6, [1; 32]).unwrap());
        assert_ne!(a, NeighbourGraph::new(50, 6, [2; 32]).unwrap());
    }

    #[test]
    fn impossible_graphs_are_refused() {
        assert_eq!(
            NeighbourGraph::new(5, 3, [0; 32]),
            Err(GraphError::OddDegreeOddCount {
                degree: 3,
                clients: 5
            })
        );
        assert_eq!(
            NeighbourGraph::new(5, 5, [0; 32]),
            Err(GraphError::DegreeTooLarge {
                degree: 5,
                clients: 5
            })
        );
        assert_eq!(
            NeighbourGraph::new(1, 1, [0; 32]),
            Err(GraphError::TooSmall)
        );
    }
}
