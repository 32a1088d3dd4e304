//! A typed client of one `FlTask` for one signer: stake, round calls (beacon and vote
//! commit/reveal with the commitments computed off chain exactly as the contract does), the
//! aggregator's anchor, and the reads a participant or aggregator needs, among them a round's
//! [`Roster`] (address, identity key, `ClientId`, role and stake of every member). Refusals come
//! back as [`ChainError::Reverted`] with the contract's custom error decoded.

use alloy::eips::BlockId;
use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::client::{BatchRequest, Waiter};
use alloy::rpc::types::{TransactionInput, TransactionRequest};
use alloy::sol_types::{SolCall, SolValue};

use crate::contracts::{FlTask, FlockToken};
use crate::error::ChainError;
use crate::identity::{IdentityKey, client_id};
use crate::queue::Anchor;
use crate::roles::{Outcome, Phase, Role};
use crate::tx::{self, ConfirmOptions, Confirmation};

/// What a beacon or vote commitment is bound to: the chain, the task contract and the round,
/// so that no commitment means anything on another chain, in another task or round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitDomain {
    /// The chain's id (EIP-155).
    pub chain_id: u64,
    /// The task contract.
    pub task: Address,
    /// The round.
    pub round: u64,
}

impl CommitDomain {
    /// `keccak256(abi.encode(chainid, task, round, member, secret))`: what `commitBeacon`
    /// takes.
    pub fn beacon(&self, member: Address, secret: B256) -> B256 {
        keccak256(
            (
                U256::from(self.chain_id),
                self.task,
                U256::from(self.round),
                member,
                secret,
            )
                .abi_encode_params(),
        )
    }

    /// `keccak256(abi.encode(chainid, task, round, voter, accept, accuracyBps, salt))`: what
    /// `commitVote` takes.
    pub fn vote(&self, voter: Address, ballot: &Ballot) -> B256 {
        keccak256(
            (
                U256::from(self.chain_id),
                self.task,
                U256::from(self.round),
                voter,
                ballot.accept,
                ballot.accuracy_bps,
                ballot.salt,
            )
                .abi_encode_params(),
        )
    }
}

/// 32 random bytes from the OS (beacon secrets, vote salts).
pub fn random_b256() -> Result<B256, ChainError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| ChainError::Unexpected(format!("OS randomness: {e}")))?;
    Ok(B256::from(b))
}

/// A voter's ballot: what it commits to and later reveals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ballot {
    /// Accept the candidate?
    pub accept: bool,
    /// The accuracy the voter measured, basis points.
    pub accuracy_bps: u32,
    /// Random salt hiding the vote until the reveal.
    pub salt: B256,
}

/// The candidate anchored for a round (`candidateOf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Whether one is anchored.
    pub anchored: bool,
    /// The candidate model's hash.
    pub model_hash: B256,
    /// The model it builds on.
    pub prev_model_hash: B256,
    /// Merkle root of the contributors.
    pub contributors_root: B256,
    /// The aggregator's accuracy figure, basis points.
    pub accuracy_bps: u32,
    /// Number of contributors.
    pub contributor_count: u16,
}

/// One member's seat in a round (`seatOf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seat {
    /// Its role ([`Role::None`] until the roles are drawn).
    pub role: Role,
    /// It committed a beacon share.
    pub beacon_committed: bool,
    /// It revealed that share.
    pub beacon_revealed: bool,
    /// It committed a vote (voters).
    pub vote_committed: bool,
    /// It revealed that vote.
    pub vote_revealed: bool,
    /// The revealed vote: accept the candidate?
    pub accept: bool,
    /// The accuracy it revealed, basis points.
    pub accuracy_bps: u32,
    /// Its update is in the anchored candidate (proposers).
    pub contributed: bool,
}

/// The receipts of `join`: the token approval, then the join itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Joined {
    /// `token.approve(task, stake)`.
    pub approve: Confirmation,
    /// `task.join(stake, identityKey)`.
    pub join: Confirmation,
}

/// One member of a round, on chain and off chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RosterEntry {
    /// Its member index: position in `participants()` at the round start, the index the role
    /// draw (`proposerIndices`) works on.
    pub index: usize,
    /// Its EVM address.
    pub address: Address,
    /// The ed25519 public key it registered with `join` (its device's TLS key).
    pub identity: IdentityKey,
    /// flock-protocol's `ClientId` of that key ([`crate::identity::client_id`]).
    pub client_id: u64,
    /// Its role in the round ([`Role::None`] until the roles are drawn).
    pub role: Role,
    /// Its stake (token wei); stakes do not change while a round is open.
    pub stake: U256,
}

/// The members of one round as the chain saw them at one block ([`TaskClient::roster`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roster {
    /// The round.
    pub round: u64,
    /// The block every value was read at.
    pub block: u64,
    /// Every member, in member-index order.
    pub members: Vec<RosterEntry>,
}

impl Roster {
    /// The proposers, in member-index order.
    pub fn proposers(&self) -> impl Iterator<Item = &RosterEntry> {
        self.members.iter().filter(|m| m.role == Role::Proposer)
    }

    /// The voters, in member-index order.
    pub fn voters(&self) -> impl Iterator<Item = &RosterEntry> {
        self.members.iter().filter(|m| m.role == Role::Voter)
    }

    /// The member with this address.
    pub fn by_address(&self, address: Address) -> Option<&RosterEntry> {
        self.members.iter().find(|m| m.address == address)
    }

    /// The member that registered this identity key.
    pub fn by_identity(&self, identity: &IdentityKey) -> Option<&RosterEntry> {
        self.members.iter().find(|m| m.identity == *identity)
    }

    /// The members whose key has this `ClientId`. The chain keeps the keys unique, not their
    /// 64-bit `ClientId`s: more than one entry means a collision the caller must refuse.
    pub fn by_client_id(&self, id: u64) -> Vec<&RosterEntry> {
        self.members.iter().filter(|m| m.client_id == id).collect()
    }
}

/// Members whose reads go into one JSON-RPC batch (three `eth_call`s each).
const ROSTER_BATCH_MEMBERS: usize = 64;

/// One task seen by one signer.
#[derive(Debug, Clone)]
pub struct TaskClient {
    provider: DynProvider,
    task: FlTask::FlTaskInstance<DynProvider>,
    token: FlockToken::FlockTokenInstance<DynProvider>,
    from: Address,
    confirm: ConfirmOptions,
    chain_id: u64,
}

impl TaskClient {
    /// A client of the task at `task` sending as `from` (the provider must hold its key);
    /// reads the task's token address.
    pub async fn connect(
        provider: DynProvider,
        task: Address,
        from: Address,
        confirm: ConfirmOptions,
    ) -> Result<Self, ChainError> {
        let instance = FlTask::new(task, provider.clone());
        let token = instance.token().call().await?;
        let chain_id = provider.get_chain_id().await?;
        Ok(Self {
            token: FlockToken::new(token, provider.clone()),
            task: instance,
            provider,
            from,
            confirm,
            chain_id,
        })
    }

    /// What this task's commitments of `round` are bound to.
    pub fn domain(&self, round: u64) -> CommitDomain {
        CommitDomain {
            chain_id: self.chain_id,
            task: self.task_address(),
            round,
        }
    }

    /// The signer's address.
    pub fn address(&self) -> Address {
        self.from
    }

    /// The task's address.
    pub fn task_address(&self) -> Address {
        *self.task.address()
    }

    /// The stake token's address.
    pub fn token_address(&self) -> Address {
        *self.token.address()
    }

    /// The provider in use.
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// The task's immutable parameters (`params()`).
    pub async fn params(&self) -> Result<FlTask::TaskParams, ChainError> {
        Ok(self.task.params().call().await?)
    }

    /// The number of rounds the task runs.
    pub async fn total_rounds(&self) -> Result<u64, ChainError> {
        Ok(u64::from(self.task.totalRounds().call().await?))
    }

    /// Participants needed to start a round.
    pub async fn min_participants(&self) -> Result<usize, ChainError> {
        Ok(usize::from(self.task.minParticipants().call().await?))
    }

    /// The smallest stake `join` takes (token wei).
    pub async fn min_stake(&self) -> Result<U256, ChainError> {
        Ok(self.task.minStake().call().await?)
    }

    /// Whether `who` is a member of `round` (staked before it started and still active).
    pub async fn is_member(&self, round: u64, who: Address) -> Result<bool, ChainError> {
        Ok(self.task.isMember(U256::from(round), who).call().await?)
    }

    /// `who`'s seat in `round`.
    pub async fn seat_of(&self, round: u64, who: Address) -> Result<Seat, ChainError> {
        let s = self.task.seatOf(U256::from(round), who).call().await?;
        Ok(Seat {
            role: Role::from_u8(s.role).ok_or_else(|| bad("seatOf"))?,
            beacon_committed: s.beaconCommitted,
            beacon_revealed: s.beaconRevealed,
            vote_committed: s.voteCommitted,
            vote_revealed: s.voteRevealed,
            accept: s.accept,
            accuracy_bps: s.accuracyBps,
            contributed: s.contributed,
        })
    }

    /// Approves the task for `stake` and joins with it, registering `identity` (this
    /// participant's ed25519 public key: non-zero, not held by another participant).
    pub async fn join(&self, stake: U256, identity: IdentityKey) -> Result<Joined, ChainError> {
        let approve = self
            .token
            .approve(self.task_address(), stake)
            .from(self.from);
        let approve = tx::send(approve, &self.provider, &self.confirm).await?;
        let join = tx::send(
            self.task.join(stake, identity).from(self.from),
            &self.provider,
            &self.confirm,
        )
        .await?;
        Ok(Joined { approve, join })
    }

    /// Leaves the task, taking the stake back.
    pub async fn leave(&self) -> Result<Confirmation, ChainError> {
        tx::send(
            self.task.leave().from(self.from),
            &self.provider,
            &self.confirm,
        )
        .await
    }

    /// Starts the next round; returns its number.
    pub async fn start_round(&self) -> Result<(u64, Confirmation), ChainError> {
        let c = tx::send(
            self.task.startRound().from(self.from),
            &self.provider,
            &self.confirm,
        )
        .await?;
        Ok((self.current_round().await?, c))
    }

    /// Commits `secret` as this member's beacon share of `round`.
    pub async fn commit_beacon(
        &self,
        round: u64,
        secret: B256,
    ) -> Result<Confirmation, ChainError> {
        let c = self.domain(round).beacon(self.from, secret);
        let call = self.task.commitBeacon(U256::from(round), c).from(self.from);
        tx::send(call, &self.provider, &self.confirm).await
    }

    /// Reveals the beacon share committed for `round`.
    pub async fn reveal_beacon(
        &self,
        round: u64,
        secret: B256,
    ) -> Result<Confirmation, ChainError> {
        let call = self
            .task
            .revealBeacon(U256::from(round), secret)
            .from(self.from);
        tx::send(call, &self.provider, &self.confirm).await
    }

    /// Draws the roles of `round`.
    pub async fn draw_roles(&self, round: u64) -> Result<Confirmation, ChainError> {
        let call = self.task.drawRoles(U256::from(round)).from(self.from);
        tx::send(call, &self.provider, &self.confirm).await
    }

    /// Anchors the candidate of `round` once, without a queue or retries (aggregator only;
    /// a service anchors through [`crate::anchor::Anchorer`]). `contributors` must be strictly
    /// ascending (see [`crate::merkle::sorted_contributors`]).
    pub async fn anchor_candidate(
        &self,
        round: u64,
        model_hash: B256,
        prev_model_hash: B256,
        accuracy_bps: u32,
        contributors: &[Address],
    ) -> Result<Confirmation, ChainError> {
        let anchor = Anchor {
            task: self.task_address(),
            round,
            model_hash,
            prev_model_hash,
            accuracy_bps,
            contributors: contributors.to_vec(),
        };
        let call = self.task.call_builder(&anchor.call()).from(self.from);
        tx::send(call, &self.provider, &self.confirm).await
    }

    /// Commits `ballot` as this voter's vote in `round`.
    pub async fn commit_vote(
        &self,
        round: u64,
        ballot: &Ballot,
    ) -> Result<Confirmation, ChainError> {
        let c = self.domain(round).vote(self.from, ballot);
        let call = self.task.commitVote(U256::from(round), c).from(self.from);
        tx::send(call, &self.provider, &self.confirm).await
    }

    /// Reveals `ballot` in `round`.
    pub async fn reveal_vote(
        &self,
        round: u64,
        ballot: &Ballot,
    ) -> Result<Confirmation, ChainError> {
        let call = self
            .task
            .revealVote(
                U256::from(round),
                ballot.accept,
                ballot.accuracy_bps,
                ballot.salt,
            )
            .from(self.from);
        tx::send(call, &self.provider, &self.confirm).await
    }

    /// Settles `round`.
    pub async fn finalise(&self, round: u64) -> Result<Confirmation, ChainError> {
        let call = self.task.finalise(U256::from(round)).from(self.from);
        tx::send(call, &self.provider, &self.confirm).await
    }

    /// The round most recently started (0 before the first).
    pub async fn current_round(&self) -> Result<u64, ChainError> {
        to_u64(self.task.currentRound().call().await?, "currentRound")
    }

    /// The current round's phase.
    pub async fn current_phase(&self) -> Result<Phase, ChainError> {
        let v = self.task.currentPhase().call().await?;
        Phase::from_u8(v).ok_or_else(|| bad("currentPhase"))
    }

    /// Role of `who` in `round`.
    pub async fn role_of(&self, round: u64, who: Address) -> Result<Role, ChainError> {
        let v = self.task.roleOf(U256::from(round), who).call().await?;
        Role::from_u8(v).ok_or_else(|| bad("roleOf"))
    }

    /// The candidate anchored for `round`.
    pub async fn candidate_of(&self, round: u64) -> Result<Candidate, ChainError> {
        let c = self.task.candidateOf(U256::from(round)).call().await?;
        Ok(Candidate {
            anchored: c.anchored,
            model_hash: c.modelHash,
            prev_model_hash: c.prevModelHash,
            contributors_root: c.contributorsRoot,
            accuracy_bps: c.accuracyBps,
            contributor_count: c.contributorCount,
        })
    }

    /// Outcome and score of `round`.
    pub async fn outcome_of(
        &self,
        round: u64,
    ) -> Result<(Outcome, alloy::primitives::I256), ChainError> {
        let o = self.task.outcomeOf(U256::from(round)).call().await?;
        let outcome = Outcome::from_u8(o.outcome).ok_or_else(|| bad("outcomeOf"))?;
        Ok((outcome, o.score))
    }

    /// The last accepted model hash and the round that produced it (0: the initial model).
    pub async fn last_accepted(&self) -> Result<(B256, u64), ChainError> {
        let r = self.task.lastAccepted().call().await?;
        Ok((r.modelHash, to_u64(r.round, "lastAccepted")?))
    }

    /// Stake of `who` (0 if not a participant).
    pub async fn stake_of(&self, who: Address) -> Result<U256, ChainError> {
        Ok(self.task.stakeOf(who).call().await?)
    }

    /// Stake of `who` as of `block` (the node must keep that block's state).
    pub async fn stake_of_at(&self, who: Address, block: u64) -> Result<U256, ChainError> {
        Ok(self
            .task
            .stakeOf(who)
            .block(BlockId::number(block))
            .call()
            .await?)
    }

    /// `participantInfo(who)`: active, stake, strikes, first round as a member.
    pub async fn participant_info(
        &self,
        who: Address,
    ) -> Result<FlTask::participantInfoReturn, ChainError> {
        Ok(self.task.participantInfo(who).call().await?)
    }

    /// Whether `who` is banned from rejoining.
    pub async fn is_banned(&self, who: Address) -> Result<bool, ChainError> {
        Ok(self.task.banned(who).call().await?)
    }

    /// The identity key `who` registered (zero if it is not a participant).
    pub async fn identity_of(&self, who: Address) -> Result<IdentityKey, ChainError> {
        Ok(self.task.identityOf(who).call().await?)
    }

    /// The participant that registered `identity` (`None` if nobody holds it).
    pub async fn participant_of_identity(
        &self,
        identity: IdentityKey,
    ) -> Result<Option<Address>, ChainError> {
        let a = self.task.participantOfIdentity(identity).call().await?;
        Ok((a != Address::ZERO).then_some(a))
    }

    /// The members of `round` at the latest block: see [`TaskClient::roster_at`].
    pub async fn roster(&self, round: u64) -> Result<Roster, ChainError> {
        let block = self.provider.get_block_number().await?;
        self.roster_at(round, block).await
    }

    /// The members of `round` as of `block`: address, identity key, `ClientId`, role and
    /// stake of each, in member-index order, all read at that one block. The round must be
    /// open at `block` (started, not finalised: from `startRound` to `finalise`, nobody
    /// leaves, so the first `memberCount` entries of `participants()` are its members), else
    /// [`ChainError::Unavailable`]; for a finalised round, ask at a block where it was open
    /// (the node must keep that state). Cost: one JSON-RPC batch for the round and the
    /// participant list, then one batch per 64 members (`identityOf`, `roleOf`,
    /// `participantInfo` each).
    pub async fn roster_at(&self, round: u64, block: u64) -> Result<Roster, ChainError> {
        let client = self.provider.client();
        let mut batch = BatchRequest::new(client);
        let info = self.batch_call(
            &mut batch,
            block,
            FlTask::roundInfoCall {
                round: U256::from(round),
            },
        )?;
        let everyone = self.batch_call(&mut batch, block, FlTask::participantsCall {})?;
        batch.send().await?;
        let info = decode::<FlTask::roundInfoCall>(info.await?)?;
        let everyone = decode::<FlTask::participantsCall>(everyone.await?)?;
        if round == 0 || info.startedAt == 0 {
            return Err(ChainError::Unavailable(format!(
                "round {round} has not started at block {block}"
            )));
        }
        if Outcome::from_u8(info.outcome) != Some(Outcome::Pending) {
            return Err(ChainError::Unavailable(format!(
                "round {round} is finalised at block {block}: ask at a block where it was open"
            )));
        }
        let n = usize::from(info.memberCount);
        let addresses = everyone.get(..n).ok_or_else(|| {
            ChainError::Unexpected(format!(
                "round {round} has {n} members but participants() lists {}",
                everyone.len()
            ))
        })?;

        let mut members = Vec::with_capacity(n);
        for (c, chunk) in addresses.chunks(ROSTER_BATCH_MEMBERS).enumerate() {
            let mut batch = BatchRequest::new(client);
            let mut pending = Vec::with_capacity(chunk.len());
            for &who in chunk {
                let identity =
                    self.batch_call(&mut batch, block, FlTask::identityOfCall { who })?;
                let role = self.batch_call(
                    &mut batch,
                    block,
                    FlTask::roleOfCall {
                        round: U256::from(round),
                        who,
                    },
                )?;
                let part =
                    self.batch_call(&mut batch, block, FlTask::participantInfoCall { who })?;
                pending.push((who, identity, role, part));
            }
            batch.send().await?;
            for (i, (address, identity, role, part)) in pending.into_iter().enumerate() {
                let index = c * ROSTER_BATCH_MEMBERS + i;
                let identity = decode::<FlTask::identityOfCall>(identity.await?)?;
                let role = decode::<FlTask::roleOfCall>(role.await?)?;
                let role = Role::from_u8(role).ok_or_else(|| bad("roleOf"))?;
                let part = decode::<FlTask::participantInfoCall>(part.await?)?;
                if !part.active || part.eligibleFromRound > U256::from(round) {
                    return Err(ChainError::Unexpected(format!(
                        "participants()[{index}] = {address} is not a member of round {round}"
                    )));
                }
                members.push(RosterEntry {
                    index,
                    address,
                    identity,
                    client_id: client_id(&identity.0),
                    role,
                    stake: part.stake,
                });
            }
        }
        Ok(Roster {
            round,
            block,
            members,
        })
    }

    /// Adds `eth_call(task, call)` at `block` to `batch`.
    fn batch_call<C: SolCall>(
        &self,
        batch: &mut BatchRequest<'_>,
        block: u64,
        call: C,
    ) -> Result<Waiter<Bytes>, ChainError> {
        let request = TransactionRequest::default()
            .to(self.task_address())
            .input(TransactionInput::new(call.abi_encode().into()));
        Ok(batch.add_call("eth_call", &(request, BlockId::number(block)))?)
    }

    /// Active participants in member-index order.
    pub async fn participants(&self) -> Result<Vec<Address>, ChainError> {
        Ok(self.task.participants().call().await?)
    }

    /// Everything about `round` but the candidate.
    pub async fn round_info(&self, round: u64) -> Result<FlTask::RoundView, ChainError> {
        Ok(self.task.roundInfo(U256::from(round)).call().await?)
    }

    /// [`TaskClient::round_info`] with its outcome decoded (one call).
    pub async fn round_state(
        &self,
        round: u64,
    ) -> Result<(FlTask::RoundView, Outcome), ChainError> {
        let view = self.round_info(round).await?;
        let outcome = Outcome::from_u8(view.outcome).ok_or_else(|| bad("roundInfo"))?;
        Ok((view, outcome))
    }

    /// The reward pool.
    pub async fn reward_pool(&self) -> Result<U256, ChainError> {
        Ok(self.task.rewardPool().call().await?)
    }

    /// Sum of all stakes.
    pub async fn total_staked(&self) -> Result<U256, ChainError> {
        Ok(self.task.totalStaked().call().await?)
    }

    /// The contract's `beaconCommitment` (for cross-checking [`CommitDomain::beacon`]).
    pub async fn beacon_commitment_on_chain(
        &self,
        secret: B256,
        member: Address,
        round: u64,
    ) -> Result<B256, ChainError> {
        Ok(self
            .task
            .beaconCommitment(secret, member, U256::from(round))
            .call()
            .await?)
    }

    /// The contract's `voteCommitment` (for cross-checking [`CommitDomain::vote`]).
    pub async fn vote_commitment_on_chain(
        &self,
        round: u64,
        ballot: &Ballot,
        voter: Address,
    ) -> Result<B256, ChainError> {
        let call = self.task.voteCommitment(
            U256::from(round),
            ballot.accept,
            ballot.accuracy_bps,
            ballot.salt,
            voter,
        );
        Ok(call.call().await?)
    }

    /// The contract's `contributorsMerkleRoot` (pure; for cross-checking [`crate::merkle`]).
    pub async fn merkle_root_on_chain(&self, contributors: &[Address]) -> Result<B256, ChainError> {
        Ok(self
            .task
            .contributorsMerkleRoot(contributors.to_vec())
            .call()
            .await?)
    }

    /// The contract's `proposerIndices` (pure; the role draw for a seed).
    pub async fn proposer_indices_on_chain(
        &self,
        seed: B256,
        n: usize,
        k: usize,
    ) -> Result<Vec<usize>, ChainError> {
        let v = self
            .task
            .proposerIndices(seed, U256::from(n), U256::from(k))
            .call()
            .await?;
        v.into_iter()
            .map(|i| usize::try_from(i).map_err(|_| bad("proposerIndices")))
            .collect()
    }
}

fn decode<C: SolCall>(data: Bytes) -> Result<C::Return, ChainError> {
    C::abi_decode_returns(&data).map_err(|e| ChainError::Abi(format!("{}: {e}", C::SIGNATURE)))
}

fn to_u64(v: U256, what: &str) -> Result<u64, ChainError> {
    u64::try_from(v)
        .map_err(|_| ChainError::Unexpected(format!("{what} = {v} does not fit in u64")))
}

fn bad(what: &str) -> ChainError {
    ChainError::Unexpected(format!("{what} returned a value outside its enum"))
}
