//! Client, phase 1 → 2: verify the neighbours' adverts, then Shamir-share the self-mask seed
//! and the mask-agreement secret among them, each share encrypted to its holder.

use std::collections::BTreeSet;

use super::{Client, ClientError, PeerKeys, State};
use crate::keys::verify_advert;
use crate::phase::Phase;
use crate::shamir;
use crate::wire::{ClientMessage, KeyAdvert, SealedShare, ShareBundle, ShareUpload};

impl Client {
    pub(super) fn on_adverts(&mut self, adverts: Vec<KeyAdvert>) -> Result<(), ClientError> {
        let mut keys_seen: BTreeSet<[u8; 32]> = BTreeSet::new();
        keys_seen.insert(self.keys.enc_pk());
        keys_seen.insert(self.keys.mask_pk());
        for advert in adverts {
            let peer = advert.client;
            let index = self
                .config
                .index_of(peer)
                .ok_or(ClientError::UnknownPeer(peer))?;
            if !self.graph.are_neighbours(self.index, index) {
                return Err(ClientError::UnknownPeer(peer));
            }
            if self.peers.contains_key(&peer) {
                return Err(ClientError::Duplicate(peer));
            }
            verify_advert(&self.config, &self.digest, index, &advert)?;
            let identity = self
                .config
                .identity_at(index)
                .ok_or(ClientError::UnknownPeer(peer))?;
            if !keys_seen.insert(advert.enc_pk) || !keys_seen.insert(advert.mask_pk) {
                return Err(ClientError::DuplicateKey(peer));
            }
            // The pairwise mask seed, now: a low-order mask key is refused here (the exchange
            // is not contributory), before anything is sealed to its owner.
            let pair_seed =
                self.binding()
                    .pair_seed(&self.keys.mask_sk, self.id, peer, &advert.mask_pk)?;
            self.peers.insert(
                peer,
                PeerKeys {
                    identity,
                    enc_pk: advert.enc_pk,
                    pair_seed,
                },
            );
        }
        let need = self.config.threshold as usize;
        if self.peers.len() < need {
            return Err(ClientError::NotEnoughNeighbours {
                phase: Phase::AdvertiseKeys,
                have: self.peers.len(),
                need,
            });
        }
        self.send_shares()?;
        self.state = State::AwaitingShares;
        Ok(())
    }

    fn send_shares(&mut self) -> Result<(), ClientError> {
        let holders: Vec<_> = self.peers.keys().copied().collect();
        let xs: Vec<u64> = holders
            .iter()
            .map(|&h| self.config.index_of(h).map_or(0, |i| u64::from(i) + 1))
            .collect();
        let t = self.config.threshold as usize;
        let id = self.id;
        let bad_share = move |_| ClientError::BadShare(id);
        let mask_sk = zeroize::Zeroizing::new(self.keys.mask_sk.to_bytes());
        let self_mask = shamir::split(&self.self_seed, t, &xs, &mut self.rng).map_err(bad_share)?;
        let mask_key = shamir::split(&mask_sk, t, &xs, &mut self.rng).map_err(bad_share)?;
        let binding = self.binding();
        let mut shares = Vec::with_capacity(holders.len());
        for ((holder, b), s) in holders.iter().zip(self_mask).zip(mask_key) {
            let bundle = ShareBundle {
                self_mask: b,
                mask_key: s,
            };
            let plaintext = zeroize::Zeroizing::new(
                postcard::to_allocvec(&bundle).map_err(|_| ClientError::BadShare(self.id))?,
            );
            let peer = &self.peers[holder];
            let ciphertext = binding.seal(
                &self.keys.enc_sk,
                self.id,
                *holder,
                &peer.enc_pk,
                &plaintext,
            )?;
            shares.push(SealedShare {
                peer: *holder,
                ciphertext,
            });
        }
        let mut upload = ShareUpload {
            client: self.id,
            shares,
            signature: [0; 64],
        };
        upload.signature = self.identity.sign_shares(&self.digest, &upload);
        self.outbox.push_back(ClientMessage::Shares(upload));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use crate::config::{ClientId, Participant, RoundConfig, TaskId};
    use crate::keys::{AdvertContext, Identity};
    use crate::params::ThreatModel;
    use crate::wire::KeyAdvert;
    use crate::{Client, ClientError, ClientPolicy, KeyError};

    #[test]
    fn a_validly_signed_advert_with_a_low_order_key_is_refused_before_anything_is_sealed() {
        // A colluding neighbour signs a low-order key and the server passes it on: the client
        // refuses at the exchange, whichever of the two keys it is, and sends nothing.
        for weak_is_enc in [true, false] {
            let (mut client, config, ids) = five_clients();
            let digest = config.digest();
            let adverts: Vec<KeyAdvert> = (1..5u8)
                .map(|i| {
                    let (mut enc_pk, mut mask_pk) = ([10 + i; 32], [20 + i; 32]);
                    if i == 3 {
                        *(if weak_is_enc {
                            &mut enc_pk
                        } else {
                            &mut mask_pk
                        }) = [0; 32];
                    }
                    signed(&ids, &digest, i, enc_pk, mask_pk)
                })
                .collect();
            while client.poll_transmit().is_some() {}
            let err = client.on_adverts(adverts).unwrap_err();
            assert_eq!(err, ClientError::Key(KeyError::WeakKey(ClientId(3))));
            assert!(client.poll_transmit().is_none());
        }
    }

    fn five_clients() -> (Client, RoundConfig, Vec<Identity>) {
        let ids: Vec<Identity> = (0..5u8)
            .map(|i| Identity::from_secret_bytes(&[i + 1; 32]))
            .collect();
        let participants = ids
            .iter()
            .enumerate()
            .map(|(i, id)| Participant {
                id: ClientId(i as u64),
                identity: id.public(),
            })
            .collect();
        let config = RoundConfig::derive(
            TaskId([1; 32]),
            1,
            0,
            participants,
            ThreatModel::default(),
            [2; 32],
            4,
            1.0,
            1000,
        )
        .unwrap();
        let mut rng = ChaCha20Rng::from_seed([3; 32]);
        let client = Client::new(
            config.clone(),
            ClientId(0),
            &ids[0],
            &ClientPolicy::default(),
            &[2; 32],
            &mut rng,
            Instant::now(),
        )
        .unwrap();
        (client, config, ids)
    }

    fn signed(
        ids: &[Identity],
        digest: &[u8; 32],
        i: u8,
        enc_pk: [u8; 32],
        mask_pk: [u8; 32],
    ) -> KeyAdvert {
        let ctx = AdvertContext {
            digest,
            client: ClientId(u64::from(i)),
            enc_pk: &enc_pk,
            mask_pk: &mask_pk,
            self_mask_commitment: &[0; 32],
        };
        KeyAdvert {
            client: ClientId(u64::from(i)),
            enc_pk,
            mask_pk,
            self_mask_commitment: [0; 32],
            signature: ids[i as usize].sign_advert(&ctx),
        }
    }

    #[test]
    fn two_validly_signed_adverts_with_one_key_are_refused() {
        let (mut client, config, ids) = five_clients();
        // Clients 1 and 2 (colluding) advertise the same mask key, each signing it properly.
        let shared = [9u8; 32];
        let digest = config.digest();
        let adverts: Vec<KeyAdvert> = (1..5u8)
            .map(|i| {
                let mask_pk = if i <= 2 { shared } else { [20 + i; 32] };
                signed(&ids, &digest, i, [10 + i; 32], mask_pk)
            })
            .collect();
        let err = client.on_adverts(adverts).unwrap_err();
        assert_eq!(err, ClientError::DuplicateKey(ClientId(2)));
    }
}
