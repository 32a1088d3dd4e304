// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {Hashes} from "@openzeppelin/contracts/utils/cryptography/Hashes.sol";
import {IRandomnessSource} from "./IRandomnessSource.sol";

/// Parameters of a task, fixed when it is created.
struct TaskParams {
    /// Hash of the model specification (architecture, data schema, training recipe).
    bytes32 modelSpecHash;
    /// Hash of the initial global model; the "last accepted model" before round 1.
    bytes32 initialModelHash;
    /// Number of rounds the task runs.
    uint32 totalRounds;
    /// Participants needed to start a round (>= 2: one proposer and one voter).
    uint16 minParticipants;
    /// Cap on participants (stakers, including those waiting for the next round); <= 256.
    uint16 maxParticipants;
    /// Minimum stake to join (token wei).
    uint256 minStake;
    /// Fraction of a round's members drawn as proposers, in basis points (1..9999).
    uint16 proposerShareBps;
    /// Seconds for participants to commit their beacon share, from the round start.
    uint32 beaconCommitDuration;
    /// Seconds to reveal the beacon share, after the commit window.
    uint32 beaconRevealDuration;
    /// Seconds for training + aggregation + anchoring, from the role draw.
    uint32 trainingDuration;
    /// Seconds for voters to commit their vote, from the anchor.
    uint32 voteCommitDuration;
    /// Seconds to reveal the vote, after the vote commit window.
    uint32 voteRevealDuration;
    /// Reward paid out of the pool per scored round (token wei).
    uint256 rewardPerRound;
    /// Share of a loser's stake that is slashed into the pool, in basis points (0..10000).
    uint16 slashBps;
    /// Strikes after which a participant is removed (>= 1).
    uint16 strikesBeforeRemoval;
    /// The registered aggregator: the only address that may anchor candidates.
    address aggregator;
    /// External randomness (e.g. a VRF adapter); address(0) = block.prevrandao.
    address randomnessSource;
}

/// @title One federated-learning task of the FL Alliance.
/// @notice Stakes, rounds (commit-reveal beacon, role draw, candidate anchor, commit-reveal
/// stake-weighted vote), rewards and slashing. See chain/README.md for the full protocol.
///
/// Token conservation: every token this contract holds is either a participant's stake or the
/// reward pool: `token.balanceOf(this) == totalStaked + rewardPool` (">=" only if someone
/// transfers tokens to it directly, bypassing `join`/`fundPool`).
contract FlTask is ReentrancyGuard {
    using SafeERC20 for IERC20;

    // ------------------------------------------------------------------ types

    enum Role {
        None,
        Proposer,
        Voter
    }

    enum Outcome {
        Pending,
        Accepted,
        Rejected,
        Void
    }

    enum Phase {
        /// No round open; the next one may be started (if enough participants).
        Idle,
        BeaconCommit,
        BeaconReveal,
        /// Beacon closed; anyone may call drawRoles.
        RoleDraw,
        /// Roles drawn; proposers train, the aggregator anchors the candidate.
        Training,
        VoteCommit,
        VoteReveal,
        /// Deadlines passed; anyone may call finalise.
        Finalisable,
        /// All rounds finalised.
        Completed
    }

    struct Participant {
        uint128 stake;
        uint64 eligibleFrom; // first round this participant is a member of
        uint16 index; // position in `_participants`
        uint16 strikes;
        bool active;
    }

    struct Seat {
        bytes32 beaconCommit;
        bytes32 voteCommit;
        Role role;
        bool beaconRevealed;
        bool voteRevealed;
        bool accept;
        bool contributed;
        uint32 accuracyBps;
    }

    struct Round {
        uint64 startedAt;
        uint64 rolesDrawnAt;
        uint64 anchoredAt;
        uint16 memberCount;
        uint16 proposerCount;
        uint16 beaconReveals;
        uint16 voteReveals;
        uint16 contributorCount;
        uint32 candidateAccuracyBps;
        Outcome outcome;
        bool randaoCaptured;
        bytes32 beacon; // XOR of the revealed beacon secrets
        bytes32 randao; // prevrandao captured at the first beacon reveal (or at the draw)
        bytes32 seed;
        bytes32 modelHash;
        bytes32 prevModelHash;
        bytes32 contributorsRoot;
        uint128 acceptStake;
        uint128 rejectStake;
        int256 score;
        uint256 rewardPaid;
        uint256 slashed;
    }

    /// Public view of a round (what `roundInfo` returns).
    struct RoundView {
        uint256 round;
        Outcome outcome;
        uint64 startedAt;
        uint64 beaconCommitEnd;
        uint64 beaconRevealEnd;
        uint64 rolesDrawnAt;
        uint64 anchorDeadline;
        uint64 anchoredAt;
        uint64 voteCommitEnd;
        uint64 voteRevealEnd;
        uint16 memberCount;
        uint16 proposerCount;
        uint16 beaconReveals;
        uint16 voteReveals;
        bytes32 seed;
        uint128 acceptStake;
        uint128 rejectStake;
        int256 score;
        uint256 rewardPaid;
        uint256 slashed;
    }

    struct Tally {
        address[] winners;
        address[] removals;
        uint256 winnerCount;
        uint256 removalCount;
        uint256 winnerStake;
        uint256 slashedTotal;
    }

    // ------------------------------------------------------------------ constants

    uint256 public constant MAX_PARTICIPANTS = 256;
    uint256 public constant BPS = 10_000;

    // ------------------------------------------------------------------ immutables

    IERC20 public immutable token;
    address public immutable manager;
    address public immutable creator;
    uint256 public immutable taskId;

    bytes32 public immutable modelSpecHash;
    bytes32 public immutable initialModelHash;
    uint32 public immutable totalRounds;
    uint16 public immutable minParticipants;
    uint16 public immutable maxParticipants;
    uint256 public immutable minStake;
    uint16 public immutable proposerShareBps;
    uint32 public immutable beaconCommitDuration;
    uint32 public immutable beaconRevealDuration;
    uint32 public immutable trainingDuration;
    uint32 public immutable voteCommitDuration;
    uint32 public immutable voteRevealDuration;
    uint256 public immutable rewardPerRound;
    uint16 public immutable slashBps;
    uint16 public immutable strikesBeforeRemoval;
    address public immutable aggregator;
    address public immutable randomnessSource;

    // ------------------------------------------------------------------ state

    /// Tokens available for rewards (funding + slashes - payouts).
    uint256 public rewardPool;
    /// Sum of all active stakes.
    uint256 public totalStaked;
    /// Number of the latest round started (0 before the first).
    uint256 public currentRound;
    /// Hash of the last accepted model (initialModelHash until a round is accepted).
    bytes32 public lastAcceptedModelHash;
    /// Round that produced it (0 = the initial model).
    uint256 public lastAcceptedRound;

    address[] private _participants;
    mapping(address => Participant) private _participant;
    /// Each current participant's 32-byte ed25519 identity key (its device key off chain).
    mapping(address => bytes32) private _identityOf;
    /// The current participant holding each registered identity key.
    mapping(bytes32 => address) private _holderOf;
    /// Removed for reaching the strike limit: may not join again.
    mapping(address => bool) public banned;
    /// Strikes of every account and of every identity key that ever took part, kept when it
    /// leaves: a rejoin (under the same account, or another account with the same device key)
    /// starts from them, so leaving does not wash strikes off.
    mapping(address => uint16) public strikesOfAccount;
    mapping(bytes32 => uint16) public strikesOfIdentity;
    mapping(uint256 => Round) private _rounds;
    mapping(uint256 => mapping(address => Seat)) private _seats;

    // ------------------------------------------------------------------ events

    event Joined(
        address indexed participant, bytes32 indexed identityKey, uint256 stake, uint256 eligibleFromRound
    );
    event Left(address indexed participant, uint256 stakeReturned);
    event PoolFunded(address indexed from, uint256 amount, uint256 poolAfter);
    event RoundStarted(uint256 indexed round, uint256 memberCount, uint64 beaconCommitEnd, uint64 beaconRevealEnd);
    event BeaconCommitted(uint256 indexed round, address indexed participant, bytes32 commitment);
    event BeaconRevealed(uint256 indexed round, address indexed participant, bytes32 secret);
    event RolesDrawn(uint256 indexed round, bytes32 seed, uint256 proposerCount, uint256 voterCount, uint64 anchorDeadline);
    event CandidateAnchored(
        uint256 indexed round,
        bytes32 modelHash,
        bytes32 prevModelHash,
        bytes32 contributorsRoot,
        uint32 accuracyBps,
        uint256 contributorCount,
        uint64 voteCommitEnd,
        uint64 voteRevealEnd
    );
    event VoteCommitted(uint256 indexed round, address indexed voter, bytes32 commitment);
    event VoteRevealed(uint256 indexed round, address indexed voter, bool accept, uint32 accuracyBps, uint256 stake);
    event RoundFinalised(uint256 indexed round, Outcome outcome, bool accepted, int256 score, bytes32 modelHash);
    event Rewarded(uint256 indexed round, address indexed participant, uint256 amount);
    event Slashed(uint256 indexed round, address indexed participant, uint256 amount, uint256 strikes);
    event Removed(uint256 indexed round, address indexed participant, uint256 stakeReturned);

    // ------------------------------------------------------------------ errors

    error InvalidParams(string what);
    error NotManager();
    error ZeroAmount();
    error StakeBelowMinimum(uint256 amount, uint256 minStake);
    error AlreadyJoined();
    error ZeroIdentity();
    error IdentityTaken(address holder);
    error NotParticipant();
    error Banned();
    error TaskFull();
    error TaskCompleted();
    error InOpenRound();
    error RoundOpen();
    error NotEnoughParticipants(uint256 have, uint256 need);
    error WrongRound(uint256 given, uint256 current);
    error WrongPhase(Phase phase);
    error NotMember();
    error NotVoter();
    error AlreadyCommitted();
    error NotCommitted();
    error AlreadyRevealed();
    error BadReveal();
    error ZeroCommitment();
    error RolesAlreadyDrawn();
    error RandomnessNotReady();
    error NotAggregator();
    error AlreadyAnchored(uint256 round);
    error PrevModelMismatch(bytes32 given, bytes32 lastAccepted);
    error EmptyCandidate();
    error BadContributors();
    error NotFinalisable();
    error AccuracyOutOfRange();

    // ------------------------------------------------------------------ construction

    constructor(TaskParams memory p, IERC20 token_, address manager_, address creator_, uint256 taskId_) {
        if (address(token_) == address(0)) revert InvalidParams("token");
        if (p.totalRounds == 0) revert InvalidParams("totalRounds");
        if (p.minParticipants < 2) revert InvalidParams("minParticipants");
        if (p.maxParticipants < p.minParticipants || p.maxParticipants > MAX_PARTICIPANTS) {
            revert InvalidParams("maxParticipants");
        }
        if (p.minStake == 0) revert InvalidParams("minStake");
        if (p.proposerShareBps == 0 || p.proposerShareBps >= BPS) revert InvalidParams("proposerShareBps");
        if (
            p.beaconCommitDuration == 0 || p.beaconRevealDuration == 0 || p.trainingDuration == 0
                || p.voteCommitDuration == 0 || p.voteRevealDuration == 0
        ) revert InvalidParams("duration");
        if (p.slashBps > BPS) revert InvalidParams("slashBps");
        if (p.strikesBeforeRemoval == 0) revert InvalidParams("strikesBeforeRemoval");
        if (p.aggregator == address(0)) revert InvalidParams("aggregator");
        if (p.modelSpecHash == bytes32(0) || p.initialModelHash == bytes32(0)) revert InvalidParams("hash");

        token = token_;
        manager = manager_;
        creator = creator_;
        taskId = taskId_;
        modelSpecHash = p.modelSpecHash;
        initialModelHash = p.initialModelHash;
        totalRounds = p.totalRounds;
        minParticipants = p.minParticipants;
        maxParticipants = p.maxParticipants;
        minStake = p.minStake;
        proposerShareBps = p.proposerShareBps;
        beaconCommitDuration = p.beaconCommitDuration;
        beaconRevealDuration = p.beaconRevealDuration;
        trainingDuration = p.trainingDuration;
        voteCommitDuration = p.voteCommitDuration;
        voteRevealDuration = p.voteRevealDuration;
        rewardPerRound = p.rewardPerRound;
        slashBps = p.slashBps;
        strikesBeforeRemoval = p.strikesBeforeRemoval;
        aggregator = p.aggregator;
        randomnessSource = p.randomnessSource;

        lastAcceptedModelHash = p.initialModelHash;
    }

    // ------------------------------------------------------------------ pool

    /// Adds `amount` to the reward pool (caller must have approved this contract).
    function fundPool(uint256 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        token.safeTransferFrom(msg.sender, address(this), amount);
        rewardPool += amount;
        emit PoolFunded(msg.sender, amount, rewardPool);
    }

    /// Called by the TaskManager after it moved `amount` tokens from `from` into this contract.
    function creditPool(address from, uint256 amount) external {
        if (msg.sender != manager) revert NotManager();
        if (amount == 0) revert ZeroAmount();
        rewardPool += amount;
        emit PoolFunded(from, amount, rewardPool);
    }

    // ------------------------------------------------------------------ stakes

    /// Stakes `amount` (>= minStake; caller must have approved this contract) and joins the
    /// task with `identityKey`, the participant's 32-byte ed25519 public key (the key of its
    /// device's TLS client certificate off chain). The key must be non-zero and not held by
    /// another current participant; it is released when the participant leaves or is removed.
    /// A participant joining while a round is open takes part from the next round.
    function join(uint256 amount, bytes32 identityKey) external nonReentrant {
        if (banned[msg.sender]) revert Banned();
        if (_participant[msg.sender].active) revert AlreadyJoined();
        if (identityKey == bytes32(0)) revert ZeroIdentity();
        uint16 carried = strikesOfAccount[msg.sender];
        if (strikesOfIdentity[identityKey] > carried) carried = strikesOfIdentity[identityKey];
        if (carried >= strikesBeforeRemoval) revert Banned();
        address holder = _holderOf[identityKey];
        if (holder != address(0)) revert IdentityTaken(holder);
        if (amount < minStake) revert StakeBelowMinimum(amount, minStake);
        if (amount > type(uint128).max) revert InvalidParams("amount");
        if (_participants.length >= maxParticipants) revert TaskFull();
        if (currentRound >= totalRounds) revert TaskCompleted();

        token.safeTransferFrom(msg.sender, address(this), amount);
        uint64 from = uint64(currentRound + 1);
        _participant[msg.sender] = Participant({
            stake: uint128(amount),
            eligibleFrom: from,
            index: uint16(_participants.length),
            strikes: carried,
            active: true
        });
        _participants.push(msg.sender);
        _identityOf[msg.sender] = identityKey;
        _holderOf[identityKey] = msg.sender;
        totalStaked += amount;
        emit Joined(msg.sender, identityKey, amount, from);
    }

    /// Leaves the task and takes the stake back. Refused while a round this participant is a
    /// member of is open (from its start to its finalisation).
    function leave() external nonReentrant {
        Participant memory p = _participant[msg.sender];
        if (!p.active) revert NotParticipant();
        if (_roundOpen() && p.eligibleFrom <= currentRound) revert InOpenRound();
        _removeParticipant(msg.sender);
        token.safeTransfer(msg.sender, p.stake);
        emit Left(msg.sender, p.stake);
    }

    // ------------------------------------------------------------------ round lifecycle

    /// Opens the next round. Anyone may call once the previous round is finalised and at least
    /// `minParticipants` participants are staked. All current participants become its members.
    function startRound() external {
        if (_roundOpen()) revert RoundOpen();
        if (currentRound >= totalRounds) revert TaskCompleted();
        uint256 n = _participants.length;
        if (n < minParticipants) revert NotEnoughParticipants(n, minParticipants);

        uint256 r = ++currentRound;
        Round storage rd = _rounds[r];
        rd.startedAt = uint64(block.timestamp);
        rd.memberCount = uint16(n);
        if (randomnessSource != address(0)) IRandomnessSource(randomnessSource).requestRandomness(r);
        emit RoundStarted(r, n, _beaconCommitEnd(rd), _beaconRevealEnd(rd));
    }

    /// Commits a beacon share: `commitment = beaconCommitment(secret, member, round)`, which
    /// binds the chain, this task and the round.
    function commitBeacon(uint256 round, bytes32 commitment) external {
        Round storage rd = _openRound(round);
        if (block.timestamp >= _beaconCommitEnd(rd)) revert WrongPhase(_phase(round));
        _requireMember(round);
        Seat storage s = _seats[round][msg.sender];
        if (s.beaconCommit != bytes32(0)) revert AlreadyCommitted();
        if (commitment == bytes32(0)) revert ZeroCommitment();
        s.beaconCommit = commitment;
        emit BeaconCommitted(round, msg.sender, commitment);
    }

    /// Reveals the beacon share committed with `commitBeacon`; it is XORed into the round beacon.
    function revealBeacon(uint256 round, bytes32 secret) external {
        Round storage rd = _openRound(round);
        if (block.timestamp < _beaconCommitEnd(rd) || block.timestamp >= _beaconRevealEnd(rd)) {
            revert WrongPhase(_phase(round));
        }
        Seat storage s = _seats[round][msg.sender];
        if (s.beaconCommit == bytes32(0)) revert NotCommitted();
        if (s.beaconRevealed) revert AlreadyRevealed();
        if (beaconCommitment(secret, msg.sender, round) != s.beaconCommit) revert BadReveal();
        s.beaconRevealed = true;
        rd.beacon ^= secret;
        rd.beaconReveals += 1;
        if (!rd.randaoCaptured) {
            rd.randaoCaptured = true;
            rd.randao = bytes32(block.prevrandao);
        }
        emit BeaconRevealed(round, msg.sender, secret);
    }

    /// Draws the roles of `round`. Anyone may call after the beacon reveal deadline.
    /// seed = keccak256(abi.encode(beacon, mix, address(this), round)), where mix is the
    /// randomness source's value, or block.prevrandao captured at the first beacon reveal
    /// (at this call if nobody revealed). Proposers: `proposerIndices(seed, n, k)`, a partial
    /// Fisher-Yates shuffle of the member indices, position i swapped with
    /// i + uint256(keccak256(abi.encode(seed, i))) % (n - i); the first
    /// k = clamp(ceil(n * proposerShareBps / 10000), 1, n - 1) are proposers, the rest voters.
    function drawRoles(uint256 round) external {
        Round storage rd = _openRound(round);
        if (block.timestamp < _beaconRevealEnd(rd)) revert WrongPhase(_phase(round));
        if (rd.rolesDrawnAt != 0) revert RolesAlreadyDrawn();

        bytes32 mix;
        if (randomnessSource != address(0)) {
            (bool ready, bytes32 v) = IRandomnessSource(randomnessSource).randomnessOf(address(this), round);
            if (!ready) revert RandomnessNotReady();
            mix = v;
        } else {
            if (!rd.randaoCaptured) {
                rd.randaoCaptured = true;
                rd.randao = bytes32(block.prevrandao);
            }
            mix = rd.randao;
        }
        bytes32 seed = keccak256(abi.encode(rd.beacon, mix, address(this), round));

        uint256 n = rd.memberCount;
        uint256 k = (n * proposerShareBps + BPS - 1) / BPS;
        if (k == 0) k = 1;
        if (k > n - 1) k = n - 1;

        uint256[] memory drawn = proposerIndices(seed, n, k);
        bool[] memory isProposer = new bool[](n);
        for (uint256 i = 0; i < k; ++i) {
            isProposer[drawn[i]] = true;
        }
        for (uint256 i = 0; i < n; ++i) {
            _seats[round][_participants[i]].role = isProposer[i] ? Role.Proposer : Role.Voter;
        }

        rd.seed = seed;
        rd.rolesDrawnAt = uint64(block.timestamp);
        rd.proposerCount = uint16(k);
        emit RolesDrawn(round, seed, k, n - k, _anchorDeadline(rd));
    }

    /// Anchors the candidate of `round`. Aggregator only, after the role draw and before the
    /// anchor deadline. `contributors`: the proposers whose updates are in the aggregate, in
    /// strictly ascending address order; the contract stores their Merkle root (leaf =
    /// keccak256(abi.encodePacked(address)), parent = commutative keccak of the two children
    /// (OpenZeppelin `Hashes.commutativeKeccak256`), an odd last node is carried up unchanged).
    /// Idempotent: sending exactly the same anchor again (for any round, even finalised) returns
    /// without effect; a different anchor for an anchored round reverts with AlreadyAnchored.
    function anchorCandidate(
        uint256 round,
        bytes32 modelHash,
        bytes32 prevModelHash,
        uint32 accuracyBps,
        address[] calldata contributors
    ) external returns (bytes32 contributorsRoot) {
        if (msg.sender != aggregator) revert NotAggregator();
        if (accuracyBps > BPS) revert AccuracyOutOfRange();
        if (modelHash == bytes32(0) || contributors.length == 0) revert EmptyCandidate();
        contributorsRoot = contributorsMerkleRoot(contributors);

        Round storage rd = _rounds[round];
        if (rd.anchoredAt != 0) {
            if (
                rd.modelHash == modelHash && rd.prevModelHash == prevModelHash && rd.contributorsRoot == contributorsRoot
                    && rd.candidateAccuracyBps == accuracyBps
            ) return contributorsRoot; // same anchor again: no-op
            revert AlreadyAnchored(round);
        }
        if (round != currentRound || round == 0) revert WrongRound(round, currentRound);
        if (rd.outcome != Outcome.Pending) revert WrongPhase(_phase(round));
        if (rd.rolesDrawnAt == 0 || block.timestamp >= _anchorDeadline(rd)) revert WrongPhase(_phase(round));
        if (prevModelHash != lastAcceptedModelHash) revert PrevModelMismatch(prevModelHash, lastAcceptedModelHash);

        address prev = address(0);
        for (uint256 i = 0; i < contributors.length; ++i) {
            address c = contributors[i];
            if (c <= prev) revert BadContributors();
            Seat storage s = _seats[round][c];
            if (s.role != Role.Proposer) revert BadContributors();
            s.contributed = true;
            prev = c;
        }

        rd.modelHash = modelHash;
        rd.prevModelHash = prevModelHash;
        rd.contributorsRoot = contributorsRoot;
        rd.candidateAccuracyBps = accuracyBps;
        rd.contributorCount = uint16(contributors.length);
        rd.anchoredAt = uint64(block.timestamp);
        emit CandidateAnchored(
            round,
            modelHash,
            prevModelHash,
            contributorsRoot,
            accuracyBps,
            contributors.length,
            _voteCommitEnd(rd),
            _voteRevealEnd(rd)
        );
    }

    /// Commits a vote: `commitment = voteCommitment(round, accept, accuracyBps, salt, voter)`, which
    /// binds the chain, this task and the round.
    /// Voters of `round` only, from the anchor until the vote commit deadline.
    function commitVote(uint256 round, bytes32 commitment) external {
        Round storage rd = _openRound(round);
        if (rd.anchoredAt == 0 || block.timestamp >= _voteCommitEnd(rd)) revert WrongPhase(_phase(round));
        Seat storage s = _seats[round][msg.sender];
        if (s.role != Role.Voter) revert NotVoter();
        if (s.voteCommit != bytes32(0)) revert AlreadyCommitted();
        if (commitment == bytes32(0)) revert ZeroCommitment();
        s.voteCommit = commitment;
        emit VoteCommitted(round, msg.sender, commitment);
    }

    /// Reveals the vote committed with `commitVote`, between the vote commit and reveal deadlines.
    function revealVote(uint256 round, bool accept, uint32 accuracyBps, bytes32 salt) external {
        Round storage rd = _openRound(round);
        if (rd.anchoredAt == 0 || block.timestamp < _voteCommitEnd(rd) || block.timestamp >= _voteRevealEnd(rd)) {
            revert WrongPhase(_phase(round));
        }
        Seat storage s = _seats[round][msg.sender];
        if (s.role != Role.Voter) revert NotVoter();
        if (s.voteCommit == bytes32(0)) revert NotCommitted();
        if (s.voteRevealed) revert AlreadyRevealed();
        if (voteCommitment(round, accept, accuracyBps, salt, msg.sender) != s.voteCommit) revert BadReveal();
        if (accuracyBps > BPS) revert AccuracyOutOfRange();
        s.voteRevealed = true;
        s.accept = accept;
        s.accuracyBps = accuracyBps;
        uint128 stake = _participant[msg.sender].stake;
        if (accept) rd.acceptStake += stake;
        else rd.rejectStake += stake;
        rd.voteReveals += 1;
        emit VoteRevealed(round, msg.sender, accept, accuracyBps, stake);
    }

    /// Settles `round`. Anyone may call: after the vote reveal deadline if a candidate was
    /// anchored; after the anchor deadline if none was (void round); or, if the roles were never
    /// drawn (randomness source silent), once trainingDuration has passed after the beacon
    /// reveal deadline (void round). See chain/README.md for the arithmetic.
    function finalise(uint256 round) external nonReentrant {
        Round storage rd = _openRound(round);
        if (_phase(round) != Phase.Finalisable) revert NotFinalisable();

        Outcome outcome;
        int256 score = int256(uint256(rd.acceptStake)) - int256(uint256(rd.rejectStake));
        if (rd.anchoredAt == 0 || rd.voteReveals == 0) outcome = Outcome.Void;
        else if (score >= 0) outcome = Outcome.Accepted;
        else outcome = Outcome.Rejected;
        bool accepted = outcome == Outcome.Accepted;

        (uint256 slashedTotal, uint256 paid) = _settle(round, rd, outcome);

        rd.outcome = outcome;
        rd.score = score;
        rd.rewardPaid = paid;
        rd.slashed = slashedTotal;
        if (accepted) {
            lastAcceptedModelHash = rd.modelHash;
            lastAcceptedRound = round;
        }
        emit RoundFinalised(round, outcome, accepted, score, lastAcceptedModelHash);
    }

    /// Judges every member of `round`, slashes the losers, pays the winners, removes the
    /// participants who reached the strike limit (or whose stake was slashed to zero).
    function _settle(uint256 round, Round storage rd, Outcome outcome)
        private
        returns (uint256 slashedTotal, uint256 paid)
    {
        uint256 n = rd.memberCount;
        bool anchored = rd.anchoredAt != 0;
        Tally memory t;
        t.winners = new address[](n);
        t.removals = new address[](n);

        for (uint256 i = 0; i < n; ++i) {
            _tally(round, _participants[i], outcome, anchored, t);
        }
        slashedTotal = t.slashedTotal;
        totalStaked -= slashedTotal;
        rewardPool += slashedTotal;

        if (t.winnerStake > 0) paid = _pay(round, t.winners, t.winnerCount, t.winnerStake);

        for (uint256 i = 0; i < t.removalCount; ++i) {
            _expel(round, t.removals[i]);
        }
    }

    function _tally(uint256 round, address a, Outcome outcome, bool anchored, Tally memory t) private {
        (bool loser, bool winner) = _judge(_seats[round][a], outcome, anchored);
        if (loser) {
            (uint256 cut, bool remove) = _slash(round, a);
            t.slashedTotal += cut;
            if (remove) t.removals[t.removalCount++] = a;
        } else if (winner) {
            t.winners[t.winnerCount++] = a;
            t.winnerStake += _participant[a].stake;
        }
    }

    /// Absent (neither): a member that committed no beacon share. Anyone may open a round, so
    /// a member that was offline when it opened is not punished for it; it earns nothing.
    /// Loser: committed a beacon share and did not reveal it; a voter who did not reveal a vote
    /// (once a candidate is anchored); in a scored round, a proposer who is not a contributor
    /// or whose candidate was rejected, a voter whose vote disagrees with the outcome.
    /// Winner (scored rounds only): a contributing proposer of an accepted candidate, a voter
    /// whose vote agrees with the outcome. A loser is never a winner.
    function _judge(Seat storage s, Outcome outcome, bool anchored) private view returns (bool loser, bool winner) {
        if (s.beaconCommit == bytes32(0)) return (false, false);
        loser = !s.beaconRevealed;
        bool scored = outcome == Outcome.Accepted || outcome == Outcome.Rejected;
        bool accepted = outcome == Outcome.Accepted;
        if (anchored && s.role == Role.Voter && !s.voteRevealed) {
            loser = true;
        } else if (scored) {
            if (s.role == Role.Proposer) {
                if (accepted && s.contributed) winner = true;
                else loser = true;
            } else if (s.role == Role.Voter) {
                if (s.accept == accepted) winner = true;
                else loser = true;
            }
        }
        if (loser) winner = false;
    }

    /// Slashes `slashBps` of `a`'s stake, rounded up (a small stake is never slashed by zero),
    /// and gives it a strike.
    function _slash(uint256 round, address a) private returns (uint256 cut, bool remove) {
        Participant storage p = _participant[a];
        cut = (uint256(p.stake) * slashBps + BPS - 1) / BPS;
        p.stake -= uint128(cut);
        p.strikes += 1;
        emit Slashed(round, a, cut, p.strikes);
        remove = p.strikes >= strikesBeforeRemoval || p.stake == 0;
    }

    /// Pays min(rewardPerRound, rewardPool) to the winners pro rata to stake (floor division;
    /// the rounding dust stays in the pool).
    function _pay(uint256 round, address[] memory winners, uint256 count, uint256 winnerStake)
        private
        returns (uint256 paid)
    {
        uint256 pot = rewardPerRound < rewardPool ? rewardPerRound : rewardPool;
        if (pot == 0) return 0;
        for (uint256 i = 0; i < count; ++i) {
            address a = winners[i];
            uint256 amount = (pot * _participant[a].stake) / winnerStake;
            if (amount == 0) continue;
            paid += amount;
            token.safeTransfer(a, amount);
            emit Rewarded(round, a, amount);
        }
        rewardPool -= paid;
    }

    /// Removes `a` after a slash: the remaining stake goes back to it; banned from rejoining
    /// if it reached the strike limit (not if its stake was merely slashed to zero).
    function _expel(uint256 round, address a) private {
        uint256 back = _participant[a].stake;
        if (_participant[a].strikes >= strikesBeforeRemoval) banned[a] = true;
        _removeParticipant(a);
        if (back > 0) token.safeTransfer(a, back);
        emit Removed(round, a, back);
    }

    // ------------------------------------------------------------------ reads

    /// All the task's parameters.
    function params() external view returns (TaskParams memory p) {
        p.modelSpecHash = modelSpecHash;
        p.initialModelHash = initialModelHash;
        p.totalRounds = totalRounds;
        p.minParticipants = minParticipants;
        p.maxParticipants = maxParticipants;
        p.minStake = minStake;
        p.proposerShareBps = proposerShareBps;
        p.beaconCommitDuration = beaconCommitDuration;
        p.beaconRevealDuration = beaconRevealDuration;
        p.trainingDuration = trainingDuration;
        p.voteCommitDuration = voteCommitDuration;
        p.voteRevealDuration = voteRevealDuration;
        p.rewardPerRound = rewardPerRound;
        p.slashBps = slashBps;
        p.strikesBeforeRemoval = strikesBeforeRemoval;
        p.aggregator = aggregator;
        p.randomnessSource = randomnessSource;
    }

    /// Phase of the current round (Idle between rounds, Completed after the last one).
    function currentPhase() external view returns (Phase) {
        return _phase(currentRound);
    }

    /// Phase of `round` (Idle for a finalised or not yet started round, except Completed
    /// for the last finalised one).
    function phaseOf(uint256 round) external view returns (Phase) {
        return _phase(round);
    }

    /// Everything about `round` except the candidate (see `candidateOf`).
    function roundInfo(uint256 round) external view returns (RoundView memory v) {
        Round storage rd = _rounds[round];
        v.round = round;
        v.outcome = rd.outcome;
        v.startedAt = rd.startedAt;
        if (rd.startedAt != 0) {
            v.beaconCommitEnd = _beaconCommitEnd(rd);
            v.beaconRevealEnd = _beaconRevealEnd(rd);
        }
        v.rolesDrawnAt = rd.rolesDrawnAt;
        if (rd.rolesDrawnAt != 0) v.anchorDeadline = _anchorDeadline(rd);
        v.anchoredAt = rd.anchoredAt;
        if (rd.anchoredAt != 0) {
            v.voteCommitEnd = _voteCommitEnd(rd);
            v.voteRevealEnd = _voteRevealEnd(rd);
        }
        v.memberCount = rd.memberCount;
        v.proposerCount = rd.proposerCount;
        v.beaconReveals = rd.beaconReveals;
        v.voteReveals = rd.voteReveals;
        v.seed = rd.seed;
        v.acceptStake = rd.acceptStake;
        v.rejectStake = rd.rejectStake;
        v.score = rd.score;
        v.rewardPaid = rd.rewardPaid;
        v.slashed = rd.slashed;
    }

    /// The candidate anchored for `round` (anchored = false and zeros if none).
    function candidateOf(uint256 round)
        external
        view
        returns (
            bool anchored,
            bytes32 modelHash,
            bytes32 prevModelHash,
            bytes32 contributorsRoot,
            uint32 accuracyBps,
            uint16 contributorCount
        )
    {
        Round storage rd = _rounds[round];
        return (
            rd.anchoredAt != 0,
            rd.modelHash,
            rd.prevModelHash,
            rd.contributorsRoot,
            rd.candidateAccuracyBps,
            rd.contributorCount
        );
    }

    /// Outcome and stake-weighted score of `round` (Pending until finalised).
    function outcomeOf(uint256 round) external view returns (Outcome outcome, int256 score) {
        Round storage rd = _rounds[round];
        return (rd.outcome, rd.score);
    }

    /// Role of `who` in `round` (None before the draw or if not a member).
    function roleOf(uint256 round, address who) external view returns (Role) {
        return _seats[round][who].role;
    }

    /// What `who` did in `round`.
    function seatOf(uint256 round, address who)
        external
        view
        returns (
            Role role,
            bool beaconCommitted,
            bool beaconRevealed,
            bool voteCommitted,
            bool voteRevealed,
            bool accept,
            uint32 accuracyBps,
            bool contributed
        )
    {
        Seat storage s = _seats[round][who];
        return (
            s.role,
            s.beaconCommit != bytes32(0),
            s.beaconRevealed,
            s.voteCommit != bytes32(0),
            s.voteRevealed,
            s.accept,
            s.accuracyBps,
            s.contributed
        );
    }

    /// Last accepted model hash and the round that produced it (0 = initial model).
    function lastAccepted() external view returns (bytes32 modelHash, uint256 round) {
        return (lastAcceptedModelHash, lastAcceptedRound);
    }

    function stakeOf(address who) external view returns (uint256) {
        return _participant[who].stake;
    }

    function participantInfo(address who)
        external
        view
        returns (bool active, uint256 stake, uint256 strikes, uint256 eligibleFromRound)
    {
        Participant storage p = _participant[who];
        return (p.active, p.stake, p.strikes, p.eligibleFrom);
    }

    /// The identity key `who` registered with `join` (0 if not a current participant).
    function identityOf(address who) external view returns (bytes32) {
        return _identityOf[who];
    }

    /// The current participant that registered `identityKey` (address(0) if none).
    function participantOfIdentity(bytes32 identityKey) external view returns (address) {
        return _holderOf[identityKey];
    }

    function participantCount() external view returns (uint256) {
        return _participants.length;
    }

    /// Active participants (at most MAX_PARTICIPANTS), including those waiting for the next round.
    function participants() external view returns (address[] memory) {
        return _participants;
    }

    /// Whether `who` is a member of `round` (staked and eligible when it started).
    function isMember(uint256 round, address who) public view returns (bool) {
        Participant storage p = _participant[who];
        return p.active && p.eligibleFrom <= round && round != 0 && round <= currentRound;
    }

    /// Merkle root of a contributor list as `anchorCandidate` computes it (0 for an empty list).
    function contributorsMerkleRoot(address[] calldata contributors) public pure returns (bytes32) {
        uint256 len = contributors.length;
        if (len == 0) return bytes32(0);
        bytes32[] memory level = new bytes32[](len);
        for (uint256 i = 0; i < len; ++i) {
            level[i] = keccak256(abi.encodePacked(contributors[i]));
        }
        while (len > 1) {
            uint256 half = (len + 1) / 2;
            for (uint256 i = 0; i < len / 2; ++i) {
                level[i] = Hashes.commutativeKeccak256(level[2 * i], level[2 * i + 1]);
            }
            if (len % 2 == 1) level[half - 1] = level[len - 1];
            len = half;
        }
        return level[0];
    }

    /// The role draw of `drawRoles` as a pure function: the member indices (positions in
    /// `participants()` at the round start) drawn as proposers from `seed`, in draw order. A
    /// partial Fisher-Yates shuffle of `0..n-1`: for i < k, position i is swapped with
    /// i + uint256(keccak256(abi.encode(seed, i))) % (n - i); the first k positions are returned.
    /// Reverts with InvalidParams("proposerIndices") unless k <= n <= MAX_PARTICIPANTS.
    function proposerIndices(bytes32 seed, uint256 n, uint256 k) public pure returns (uint256[] memory drawn) {
        if (k > n || n > MAX_PARTICIPANTS) revert InvalidParams("proposerIndices");
        uint256[] memory order = new uint256[](n);
        for (uint256 i = 0; i < n; ++i) {
            order[i] = i;
        }
        drawn = new uint256[](k);
        for (uint256 i = 0; i < k; ++i) {
            uint256 j = i + (uint256(keccak256(abi.encode(seed, i))) % (n - i));
            (order[i], order[j]) = (order[j], order[i]);
            drawn[i] = order[i];
        }
    }

    /// Commitment a member sends to `commitBeacon`:
    /// `keccak256(abi.encode(chainid, address(this), round, member, secret))`.
    function beaconCommitment(bytes32 secret, address member, uint256 round) public view returns (bytes32) {
        return keccak256(abi.encode(block.chainid, address(this), round, member, secret));
    }

    /// Commitment a voter sends to `commitVote`:
    /// `keccak256(abi.encode(chainid, address(this), round, voter, accept, accuracyBps, salt))`.
    function voteCommitment(uint256 round, bool accept, uint32 accuracyBps, bytes32 salt, address voter)
        public
        view
        returns (bytes32)
    {
        return keccak256(abi.encode(block.chainid, address(this), round, voter, accept, accuracyBps, salt));
    }

    // ------------------------------------------------------------------ internals

    function _roundOpen() private view returns (bool) {
        return currentRound != 0 && _rounds[currentRound].outcome == Outcome.Pending;
    }

    function _openRound(uint256 round) private view returns (Round storage rd) {
        if (round != currentRound || round == 0) revert WrongRound(round, currentRound);
        rd = _rounds[round];
        if (rd.outcome != Outcome.Pending) revert WrongPhase(_phase(round));
    }

    function _requireMember(uint256 round) private view {
        Participant storage p = _participant[msg.sender];
        if (!p.active || p.eligibleFrom > round) revert NotMember();
    }

    function _beaconCommitEnd(Round storage rd) private view returns (uint64) {
        return rd.startedAt + beaconCommitDuration;
    }

    function _beaconRevealEnd(Round storage rd) private view returns (uint64) {
        return rd.startedAt + beaconCommitDuration + beaconRevealDuration;
    }

    function _anchorDeadline(Round storage rd) private view returns (uint64) {
        return rd.rolesDrawnAt + trainingDuration;
    }

    function _voteCommitEnd(Round storage rd) private view returns (uint64) {
        return rd.anchoredAt + voteCommitDuration;
    }

    function _voteRevealEnd(Round storage rd) private view returns (uint64) {
        return rd.anchoredAt + voteCommitDuration + voteRevealDuration;
    }

    function _phase(uint256 round) private view returns (Phase) {
        if (round == 0 || round > currentRound) return Phase.Idle;
        Round storage rd = _rounds[round];
        if (rd.outcome != Outcome.Pending) {
            return (round == totalRounds) ? Phase.Completed : Phase.Idle;
        }
        uint256 t = block.timestamp;
        if (t < _beaconCommitEnd(rd)) return Phase.BeaconCommit;
        if (t < _beaconRevealEnd(rd)) return Phase.BeaconReveal;
        if (rd.rolesDrawnAt == 0) {
            return (t >= uint256(_beaconRevealEnd(rd)) + trainingDuration) ? Phase.Finalisable : Phase.RoleDraw;
        }
        if (rd.anchoredAt == 0) return (t < _anchorDeadline(rd)) ? Phase.Training : Phase.Finalisable;
        if (t < _voteCommitEnd(rd)) return Phase.VoteCommit;
        if (t < _voteRevealEnd(rd)) return Phase.VoteReveal;
        return Phase.Finalisable;
    }

    /// Removes `a` (leaving or expelled), keeping its strikes for its account and its identity
    /// key.
    function _removeParticipant(address a) private {
        Participant storage p = _participant[a];
        bytes32 identity = _identityOf[a];
        if (p.strikes > 0) {
            strikesOfAccount[a] = p.strikes;
            if (p.strikes > strikesOfIdentity[identity]) strikesOfIdentity[identity] = p.strikes;
        }
        uint256 idx = p.index;
        uint256 last = _participants.length - 1;
        if (idx != last) {
            address moved = _participants[last];
            _participants[idx] = moved;
            _participant[moved].index = uint16(idx);
        }
        _participants.pop();
        totalStaked -= p.stake;
        delete _holderOf[identity];
        delete _identityOf[a];
        delete _participant[a];
    }
}
