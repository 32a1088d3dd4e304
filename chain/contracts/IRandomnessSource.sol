// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// @title External randomness plugged into a task's role draw.
/// @notice A task created with a non-zero `randomnessSource` calls `requestRandomness` when a
/// round starts and reads `randomnessOf` when the roles are drawn; the value replaces
/// `block.prevrandao` in the seed (it is still hashed with the participants' beacon).
/// An asynchronous source (a VRF coordinator adapter) answers `ready = false` until its
/// callback has delivered the value; the draw waits for it (and the round becomes void if it
/// has not arrived by the end of the training window).
interface IRandomnessSource {
    /// Called by the task (msg.sender) when `round` starts.
    function requestRandomness(uint256 round) external;

    /// The value for (`task`, `round`), or ready = false while it is not known yet.
    function randomnessOf(address task, uint256 round) external view returns (bool ready, bytes32 value);
}
