//! Keys and key derivation of a round.
//!
//! * A client's long-term **identity** is an ed25519 key. It signs the two per-round X25519
//!   public keys it advertises and a commitment to its self-mask seed, bound to the digest of
//!   the round configuration (task, round, attempt, participants, parameters) and its id, so
//!   that an advert can be neither forged nor replayed into another round, attempt or
//!   configuration. It also signs the round's survivor list in the consistency check.
//! * **Round keys**: one X25519 pair to encrypt shares, one for mask agreement, fresh per
//!   attempt. Low-order public keys are refused ([`is_low_order`]).
//! * The **pairwise mask seed** of clients `u < v` is HKDF-SHA256 of their mask-agreement
//!   Diffie–Hellman secret, bound to (configuration digest, u, v). The server can recompute it
//!   for a dropped client once it has rebuilt that client's mask-agreement secret key.
//! * **Share encryption**: ChaCha20-Poly1305 under HKDF-SHA256 of the share-encryption
//!   Diffie–Hellman secret, bound to (configuration digest, sender, receiver), with the same
//!   tuple as associated data. Each key encrypts exactly one message, so the nonce is fixed.
//! * **Rebuilt secrets are checked**: a rebuilt mask-agreement key must give the advertised
//!   public key, a rebuilt self-mask seed must match the signed commitment
//!   (`self_mask_commitment`), so a corrupted share is caught instead of garbling the sum.

use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::config::{ClientId, RoundConfig};
use crate::wire::KeyAdvert;

/// Stream id of every mask keystream: seeds are already unique per pair and round.
pub(crate) const MASK_STREAM: u64 = 0;

/// The sign client `me` gives the pairwise mask it shares with `peer`: the lower id adds.
pub(crate) fn pair_sign(me: ClientId, peer: ClientId) -> edge_kernels::Sign {
    if me < peer {
        edge_kernels::Sign::Add
    } else {
        edge_kernels::Sign::Sub
    }
}

const ADVERT_CONTEXT: &[u8] = b"flock/secagg+/v2/advert";
const SURVIVORS_CONTEXT: &[u8] = b"flock/secagg+/v2/survivors";
const SHARES_CONTEXT: &[u8] = b"flock/secagg+/v3/shares";
const SELF_MASK_CONTEXT: &[u8] = b"flock/secagg+/v2/self-mask";
const MASK_SALT: &[u8] = b"flock/secagg+/v2/pair-mask";
const SHARE_SALT: &[u8] = b"flock/secagg+/v2/share-key";

/// Why a key operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The advert's signature does not verify under the sender's identity key.
    #[error("bad signature on the key advert of client {0}")]
    BadSignature(ClientId),
    /// An identity key is not a valid ed25519 point.
    #[error("identity key of client {0} is not a valid ed25519 key")]
    BadIdentityKey(ClientId),
    /// A Diffie–Hellman exchange gave a non-contributory (low-order) result.
    #[error("key exchange with client {0} is degenerate (low-order public key)")]
    WeakKey(ClientId),
    /// A share ciphertext failed authentication.
    #[error("share ciphertext from client {0} does not authenticate")]
    BadCiphertext(ClientId),
    /// A signature on the survivor list does not verify.
    #[error("client {0}'s signature on the survivor list does not verify")]
    BadSurvivorSignature(ClientId),
    /// A signature on a share upload (its hash tree's root) does not verify.
    #[error("client {0}'s signature on its shares does not verify")]
    BadShareSignature(ClientId),
}

/// Whether `pk` is an X25519 point of small order (or otherwise gives a non-contributory
/// exchange): a clamped scalar is a multiple of the cofactor, so such a point always yields
/// the all-zero shared secret.
#[must_use]
pub fn is_low_order(pk: &[u8; 32]) -> bool {
    let probe = StaticSecret::from([0x5a; 32]);
    !probe
        .diffie_hellman(&PublicKey::from(*pk))
        .was_contributory()
}

/// The commitment to client `client`'s self-mask seed that its advert carries.
#[must_use]
pub(crate) fn self_mask_commitment(
    digest: &[u8; 32],
    client: ClientId,
    seed: &[u8; 32],
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(SELF_MASK_CONTEXT);
    h.update(digest);
    h.update(client.0.to_le_bytes());
    h.update(seed);
    h.finalize().into()
}

/// SHA-256 of a survivor list (sorted ids), what the consistency signatures cover.
#[must_use]
pub(crate) fn survivors_hash(survivors: &[ClientId]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((survivors.len() as u64).to_le_bytes());
    for id in survivors {
        h.update(id.0.to_le_bytes());
    }
    h.finalize().into()
}

/// What a client signs over a 32-byte hash in one round: the context, the configuration
/// digest, its id and the hash (of the survivor list, or of its shares' tree).
fn signed_message(context: &[u8], digest: &[u8; 32], client: ClientId, hash: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(context.len() + 72);
    m.extend_from_slice(context);
    m.extend_from_slice(digest);
    m.extend_from_slice(&client.0.to_le_bytes());
    m.extend_from_slice(hash);
    m
}

fn survivors_message(digest: &[u8; 32], client: ClientId, list: &[u8; 32]) -> Vec<u8> {
    signed_message(SURVIVORS_CONTEXT, digest, client, list)
}

/// Checks `client`'s `signature` on `message` under its identity key (strictly); a signature
/// that does not verify gives `refused(client)`.
fn verify_signed(
    identity: &[u8; 32],
    client: ClientId,
    message: &[u8],
    signature: &[u8; 64],
    refused: fn(ClientId) -> KeyError,
) -> Result<(), KeyError> {
    let key = VerifyingKey::from_bytes(identity).map_err(|_| KeyError::BadIdentityKey(client))?;
    key.verify_strict(message, &Signature::from_bytes(signature))
        .map_err(|_| refused(client))
}

/// Verifies the survivor-list signatures `(signer, identity key, signature)` on the list with
/// hash `list`, all at once (ed25519 batch verification: about half the cost of one check each,
/// the largest fixed cost a client pays in a round). When the batch fails, each is checked alone
/// and the first that fails is named. A batch can accept a signature a strict single check
/// refuses only if its own signer made it so (a non-canonical form of its own signature); it
/// never accepts one its signer's key did not make.
pub(crate) fn verify_survivors_all(
    digest: &[u8; 32],
    list: &[u8; 32],
    signed: &[(ClientId, [u8; 32], [u8; 64])],
) -> Result<(), KeyError> {
    if signed.is_empty() {
        return Ok(());
    }
    let mut keys = Vec::with_capacity(signed.len());
    for (client, identity, _) in signed {
        keys.push(
            VerifyingKey::from_bytes(identity).map_err(|_| KeyError::BadIdentityKey(*client))?,
        );
    }
    let messages: Vec<Vec<u8>> = signed
        .iter()
        .map(|(client, _, _)| survivors_message(digest, *client, list))
        .collect();
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let signatures: Vec<Signature> = signed
        .iter()
        .map(|(_, _, sig)| Signature::from_bytes(sig))
        .collect();
    if ed25519_dalek::verify_batch(&refs, &signatures, &keys).is_ok() {
        return Ok(());
    }
    for (client, identity, signature) in signed {
        verify_survivors(identity, digest, *client, list, signature)?;
    }
    // The batch refused what each check alone accepts: refuse the whole (never the case for
    // honest signatures).
    Err(KeyError::BadSurvivorSignature(
        signed.first().map_or(ClientId(u64::MAX), |s| s.0),
    ))
}

/// Verifies `client`'s signature, under its identity key, on the survivor list with hash
/// `list` in the round with configuration digest `digest`.
pub(crate) fn verify_survivors(
    identity: &[u8; 32],
    digest: &[u8; 32],
    client: ClientId,
    list: &[u8; 32],
    signature: &[u8; 64],
) -> Result<(), KeyError> {
    verify_signed(
        identity,
        client,
        &survivors_message(digest, client, list),
        signature,
        KeyError::BadSurvivorSignature,
    )
}

fn shares_message(digest: &[u8; 32], client: ClientId, root: &[u8; 32]) -> Vec<u8> {
    signed_message(SHARES_CONTEXT, digest, client, root)
}

/// Verifies `client`'s signature, under its identity key, on the root of the hash tree over
/// its share ciphertexts ([`crate::merkle`]) in the round with configuration digest `digest`.
pub(crate) fn verify_shares(
    identity: &[u8; 32],
    digest: &[u8; 32],
    client: ClientId,
    root: &[u8; 32],
    signature: &[u8; 64],
) -> Result<(), KeyError> {
    verify_signed(
        identity,
        client,
        &shares_message(digest, client, root),
        signature,
        KeyError::BadShareSignature,
    )
}

/// A client's long-term signing identity.
pub struct Identity(SigningKey);

impl Identity {
    /// From the 32-byte ed25519 secret key.
    #[must_use]
    pub fn from_secret_bytes(bytes: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(bytes))
    }

    /// A second handle on the same key (a round keeps one to sign its survivor list).
    pub(crate) fn duplicate(&self) -> Self {
        Self(self.0.clone())
    }

    /// The public key peers verify adverts with.
    #[must_use]
    pub fn public(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    pub(crate) fn sign_advert(&self, ctx: &AdvertContext<'_>) -> [u8; 64] {
        self.0.sign(&ctx.message()).to_bytes()
    }

    /// Signs `upload` (the root of its hash tree, [`crate::merkle::upload_tree`]) for the
    /// round with configuration digest `digest`: what [`crate::wire::ShareUpload::signature`]
    /// holds.
    #[must_use]
    pub fn sign_shares(&self, digest: &[u8; 32], upload: &crate::wire::ShareUpload) -> [u8; 64] {
        let root = crate::merkle::upload_tree(digest, upload).root();
        self.0
            .sign(&shares_message(digest, upload.client, &root))
            .to_bytes()
    }

    pub(crate) fn sign_survivors(
        &self,
        digest: &[u8; 32],
        client: ClientId,
        list: &[u8; 32],
    ) -> [u8; 64] {
        self.0
            .sign(&survivors_message(digest, client, list))
            .to_bytes()
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Identity").field(&self.public()).finish()
    }
}

/// What an advert signature covers.
pub(crate) struct AdvertContext<'a> {
    pub(crate) digest: &'a [u8; 32],
    pub(crate) client: ClientId,
    pub(crate) enc_pk: &'a [u8; 32],
    pub(crate) mask_pk: &'a [u8; 32],
    pub(crate) self_mask_commitment: &'a [u8; 32],
}

impl AdvertContext<'_> {
    fn message(&self) -> Vec<u8> {
        let mut m = Vec::with_capacity(ADVERT_CONTEXT.len() + 32 + 8 + 96);
        m.extend_from_slice(ADVERT_CONTEXT);
        m.extend_from_slice(self.digest);
        m.extend_from_slice(&self.client.0.to_le_bytes());
        m.extend_from_slice(self.enc_pk);
        m.extend_from_slice(self.mask_pk);
        m.extend_from_slice(self.self_mask_commitment);
        m
    }

    /// Verifies `signature` under the identity key `identity`.
    pub(crate) fn verify(&self, identity: &[u8; 32], signature: &[u8; 64]) -> Result<(), KeyError> {
        verify_signed(
            identity,
            self.client,
            &self.message(),
            signature,
            KeyError::BadSignature,
        )
    }
}

/// Checks `advert`, claimed by the participant at graph index `index`, against that
/// participant's identity key and this round's configuration (`digest` is
/// [`RoundConfig::digest`]).
pub(crate) fn verify_advert(
    config: &RoundConfig,
    digest: &[u8; 32],
    index: u32,
    advert: &KeyAdvert,
) -> Result<(), KeyError> {
    let identity = config
        .identity_at(index)
        .ok_or(KeyError::BadIdentityKey(advert.client))?;
    AdvertContext {
        digest,
        client: advert.client,
        enc_pk: &advert.enc_pk,
        mask_pk: &advert.mask_pk,
        self_mask_commitment: &advert.self_mask_commitment,
    }
    .verify(&identity, &advert.signature)
}

/// Refuses an advert whose round keys are of low order. The server checks every advert (two
/// scalar multiplications each); a client need not: every exchange it makes with a
/// neighbour's key checks the result is contributory ([`KeyError::WeakKey`]) before anything
/// is sealed to it or masked with it.
pub(crate) fn refuse_low_order(advert: &KeyAdvert) -> Result<(), KeyError> {
    if is_low_order(&advert.enc_pk) || is_low_order(&advert.mask_pk) {
        return Err(KeyError::WeakKey(advert.client));
    }
    Ok(())
}

/// The two X25519 key pairs of one client in one round.
pub(crate) struct RoundKeys {
    pub(crate) enc_sk: StaticSecret,
    pub(crate) mask_sk: StaticSecret,
}

impl RoundKeys {
    pub(crate) fn from_secrets(enc: [u8; 32], mask: [u8; 32]) -> Self {
        Self {
            enc_sk: StaticSecret::from(enc),
            mask_sk: StaticSecret::from(mask),
        }
    }

    pub(crate) fn enc_pk(&self) -> [u8; 32] {
        PublicKey::from(&self.enc_sk).to_bytes()
    }

    pub(crate) fn mask_pk(&self) -> [u8; 32] {
        PublicKey::from(&self.mask_sk).to_bytes()
    }
}

/// Who is talking to whom, in which round configuration: what derived keys are bound to.
#[derive(Clone, Copy)]
pub(crate) struct Binding<'a> {
    /// [`RoundConfig::digest`].
    pub(crate) digest: &'a [u8; 32],
}

impl Binding<'_> {
    fn info(&self, a: ClientId, b: ClientId) -> [u8; 32 + 8 + 8] {
        let mut info = [0u8; 48];
        info[..32].copy_from_slice(self.digest);
        info[32..40].copy_from_slice(&a.0.to_le_bytes());
        info[40..48].copy_from_slice(&b.0.to_le_bytes());
        info
    }

    /// The pairwise mask seed of `me` and `peer`: the same on both sides and, given `me`'s
    /// mask-agreement secret, on the server.
    pub(crate) fn pair_seed(
        &self,
        mask_sk: &StaticSecret,
        me: ClientId,
        peer: ClientId,
        peer_mask_pk: &[u8; 32],
    ) -> Result<Zeroizing<[u8; 32]>, KeyError> {
        let dh = mask_sk.diffie_hellman(&PublicKey::from(*peer_mask_pk));
        if !dh.was_contributory() {
            return Err(KeyError::WeakKey(peer));
        }
        let (lo, hi) = if me.0 < peer.0 {
            (me, peer)
        } else {
            (peer, me)
        };
        Ok(expand(MASK_SALT, dh.as_bytes(), &self.info(lo, hi)))
    }

    /// Encrypts a share bundle from `sender` to `receiver`.
    pub(crate) fn seal(
        &self,
        enc_sk: &StaticSecret,
        sender: ClientId,
        receiver: ClientId,
        receiver_enc_pk: &[u8; 32],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        let (cipher, aad) =
            self.share_cipher(enc_sk, sender, receiver, receiver_enc_pk, receiver)?;
        cipher
            .encrypt(
                &Default::default(),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| KeyError::BadCiphertext(sender))
    }

    /// Decrypts a share bundle that `sender` addressed to `receiver`.
    pub(crate) fn open(
        &self,
        enc_sk: &StaticSecret,
        sender: ClientId,
        receiver: ClientId,
        sender_enc_pk: &[u8; 32],
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let (cipher, aad) = self.share_cipher(enc_sk, sender, receiver, sender_enc_pk, sender)?;
        cipher
            .decrypt(
                &Default::default(),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| KeyError::BadCiphertext(sender))
    }

    fn share_cipher(
        &self,
        enc_sk: &StaticSecret,
        sender: ClientId,
        receiver: ClientId,
        peer_pk: &[u8; 32],
        peer: ClientId,
    ) -> Result<(ChaCha20Poly1305, [u8; 48]), KeyError> {
        let dh = enc_sk.diffie_hellman(&PublicKey::from(*peer_pk));
        if !dh.was_contributory() {
            return Err(KeyError::WeakKey(peer));
        }
        let aad = self.info(sender, receiver);
        let key = expand(SHARE_SALT, dh.as_bytes(), &aad);
        Ok((ChaCha20Poly1305::new(&(*key).into()), aad))
    }
}

fn expand(salt: &[u8], ikm: &[u8], info: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut okm = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's 8160-byte output limit: expand cannot fail.
    let _ = Hkdf::<Sha256>::new(Some(salt), ikm).expand(info, okm.as_mut());
    okm
}

#[cfg(test)]
mod tests {
    use super::*;

    const R1: [u8; 32] = [3; 32];
    const R2: [u8; 32] = [4; 32];

    fn two_clients() -> (RoundKeys, RoundKeys) {
        (
            RoundKeys::from_secrets([1; 32], [2; 32]),
            RoundKeys::from_secrets([3; 32], [4; 32]),
        )
    }

    #[test]
    fn both_sides_derive_the_same_pair_seed_and_it_is_bound_to_the_round() {
        let (a, b) = two_clients();
        let r1 = Binding { digest: &R1 };
        let s_ab = r1
            .pair_seed(&a.mask_sk, ClientId(10), ClientId(20), &b.mask_pk())
            .unwrap();
        let s_ba = r1
            .pair_seed(&b.mask_sk, ClientId(20), ClientId(10), &a.mask_pk())
            .unwrap();
        assert_eq!(*s_ab, *s_ba);
        let r2 = Binding { digest: &R2 };
        assert_ne!(
            *s_ab,
            *r2.pair_seed(&a.mask_sk, ClientId(10), ClientId(20), &b.mask_pk())
                .unwrap()
        );
    }

    #[test]
    fn survivor_signatures_verify_as_a_batch_and_a_forged_one_is_named() {
        let list = survivors_hash(&[ClientId(1), ClientId(2), ClientId(3)]);
        let signed: Vec<(ClientId, [u8; 32], [u8; 64])> = (1..=3u64)
            .map(|i| {
                let id = Identity::from_secret_bytes(&[i as u8; 32]);
                let client = ClientId(i);
                (client, id.public(), id.sign_survivors(&R1, client, &list))
            })
            .collect();
        assert_eq!(verify_survivors_all(&R1, &list, &signed), Ok(()));
        assert_eq!(verify_survivors_all(&R1, &list, &[]), Ok(()));
        // Another list, another round, a flipped bit in one signature: refused, the signer named.
        let other = survivors_hash(&[ClientId(1), ClientId(2)]);
        assert_eq!(
            verify_survivors_all(&R1, &other, &signed),
            Err(KeyError::BadSurvivorSignature(ClientId(1)))
        );
        assert!(verify_survivors_all(&[4; 32], &list, &signed).is_err());
        let mut forged = signed.clone();
        forged[1].2[5] ^= 1;
        assert_eq!(
            verify_survivors_all(&R1, &list, &forged),
            Err(KeyError::BadSurvivorSignature(ClientId(2)))
        );
        // A signature under another signer's name.
        let mut swapped = signed;
        swapped[2].2 = swapped[0].2;
        assert_eq!(
            verify_survivors_all(&R1, &list, &swapped),
            Err(KeyError::BadSurvivorSignature(ClientId(3)))
        );
    }

    #[test]
    fn sealed_shares_open_only_for_the_right_pair() {
        let (a, b) = two_clients();
        let r = Binding { digest: &R1 };
        let ct = r
            .seal(&a.enc_sk, ClientId(1), ClientId(2), &b.enc_pk(), b"share")
            .unwrap();
        assert_eq!(
            &*r.open(&b.enc_sk, ClientId(1), ClientId(2), &a.enc_pk(), &ct)
                .unwrap(),
            b"share"
        );
        // Wrong receiver binding, wrong round, tampered byte: all refused.
        assert!(
            r.open(&b.enc_sk, ClientId(1), ClientId(3), &a.enc_pk(), &ct)
                .is_err()
        );
        let other = Binding { digest: &R2 };
        assert!(
            other
                .open(&b.enc_sk, ClientId(1), ClientId(2), &a.enc_pk(), &ct)
                .is_err()
        );
        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert_eq!(
            r.open(&b.enc_sk, ClientId(1), ClientId(2), &a.enc_pk(), &bad)
                .unwrap_err(),
            KeyError::BadCiphertext(ClientId(1))
        );
    }

    #[test]
    fn low_order_public_keys_are_refused() {
        let a = RoundKeys::from_secrets([1; 32], [2; 32]);
        let r = Binding { digest: &R1 };
        let zero = [0u8; 32];
        assert_eq!(
            r.pair_seed(&a.mask_sk, ClientId(1), ClientId(9), &zero)
                .unwrap_err(),
            KeyError::WeakKey(ClientId(9))
        );
        // The eight-torsion points of Curve25519 (and their non-canonical encodings): all
        // refused before any exchange; a real key is not.
        let mut one = [0u8; 32];
        one[0] = 1;
        let order8 = [
            0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f,
            0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16,
            0x5f, 0x49, 0xb8, 0x00,
        ];
        let mut p_minus_1 = [0xff; 32];
        p_minus_1[0] = 0xec;
        p_minus_1[31] = 0x7f;
        for weak in [zero, one, order8, p_minus_1] {
            assert!(is_low_order(&weak), "{weak:02x?}");
        }
        assert!(!is_low_order(&a.mask_pk()));
    }

    #[test]
    fn adverts_verify_only_unchanged_and_in_their_round() {
        let id = Identity::from_secret_bytes(&[8; 32]);
        let (e, m) = ([1u8; 32], [2u8; 32]);
        let ctx = AdvertContext {
            digest: &R1,
            client: ClientId(5),
            enc_pk: &e,
            mask_pk: &m,
            self_mask_commitment: &[7; 32],
        };
        let sig = id.sign_advert(&ctx);
        ctx.verify(&id.public(), &sig).unwrap();
        let replay = AdvertContext { digest: &R2, ..ctx };
        assert_eq!(
            replay.verify(&id.public(), &sig),
            Err(KeyError::BadSignature(ClientId(5)))
        );
        let other = Identity::from_secret_bytes(&[9; 32]);
        let ctx = AdvertContext {
            digest: &R1,
            client: ClientId(5),
            enc_pk: &e,
            mask_pk: &m,
            self_mask_commitment: &[7; 32],
        };
        assert!(ctx.verify(&other.public(), &sig).is_err());
        let recommitted = AdvertContext {
            self_mask_commitment: &[8; 32],
            ..ctx
        };
        assert!(recommitted.verify(&id.public(), &sig).is_err());
    }
}
