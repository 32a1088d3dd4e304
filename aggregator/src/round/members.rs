//! The agents the round machine knows: connected (with their certificate's identity key) and
//! ready (they said hello for this task and have not left).

use std::collections::BTreeMap;

use flock_protocol::{ClientId, Participant};

/// One connected agent.
#[derive(Clone, Copy, Debug)]
struct Member {
    identity: [u8; 32],
    ready: bool,
}

/// The connected agents, by id.
#[derive(Debug, Default)]
pub(crate) struct Members {
    by_id: BTreeMap<ClientId, Member>,
}

impl Members {
    /// `client` connected with `identity` (not ready until it says hello); a connection of an
    /// agent already known replaces the older one.
    pub(crate) fn join(&mut self, client: ClientId, identity: [u8; 32]) {
        self.by_id.insert(
            client,
            Member {
                identity,
                ready: false,
            },
        );
    }

    /// `client` is gone; whether it was known.
    pub(crate) fn remove(&mut self, client: ClientId) -> bool {
        self.by_id.remove(&client).is_some()
    }

    /// Whether `client` is connected.
    pub(crate) fn contains(&self, client: ClientId) -> bool {
        self.by_id.contains_key(&client)
    }

    /// Marks `client` ready (or not); false if it is not connected.
    pub(crate) fn set_ready(&mut self, client: ClientId, ready: bool) -> bool {
        match self.by_id.get_mut(&client) {
            Some(m) => {
                m.ready = ready;
                true
            }
            None => false,
        }
    }

    /// How many are connected.
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Every connected agent's id.
    pub(crate) fn ids(&self) -> impl Iterator<Item = ClientId> + '_ {
        self.by_id.keys().copied()
    }

    /// The ready agents, by id.
    pub(crate) fn ready(&self) -> impl Iterator<Item = Participant> + '_ {
        self.by_id
            .iter()
            .filter(|(_, m)| m.ready)
            .map(|(id, m)| Participant {
                id: *id,
                identity: m.identity,
            })
    }

    /// Whether `p` is connected and ready with the identity key it is known by.
    pub(crate) fn is_ready_as(&self, p: &Participant) -> bool {
        self.by_id
            .get(&p.id)
            .is_some_and(|m| m.ready && m.identity == p.identity)
    }
}
