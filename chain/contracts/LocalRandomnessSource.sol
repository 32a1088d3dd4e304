// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {IRandomnessSource} from "./IRandomnessSource.sol";

/// @title Test hook: an owner-set randomness value, for local dev chains only.
/// @notice Lets tests make the role draw deterministic (together with chosen beacon secrets).
/// It refuses to be deployed anywhere but a local dev chain (chain id 31337, anvil/hardhat),
/// and a task only uses it when it was created with its address as `randomnessSource`
/// (readable on the task), so it cannot weaken a production task.
contract LocalRandomnessSource is IRandomnessSource {
    error NotLocalChain(uint256 chainId);
    error NotOwner();

    uint256 public constant LOCAL_CHAIN_ID = 31337;

    address public immutable owner;
    bytes32 public value;

    event ValueSet(bytes32 value);
    event RandomnessRequested(address indexed task, uint256 indexed round);

    constructor(bytes32 initialValue) {
        if (block.chainid != LOCAL_CHAIN_ID) revert NotLocalChain(block.chainid);
        owner = msg.sender;
        value = initialValue;
        emit ValueSet(initialValue);
    }

    function setValue(bytes32 newValue) external {
        if (msg.sender != owner) revert NotOwner();
        value = newValue;
        emit ValueSet(newValue);
    }

    function requestRandomness(uint256 round) external {
        emit RandomnessRequested(msg.sender, round);
    }

    function randomnessOf(address, uint256) external view returns (bool ready, bytes32 v) {
        return (true, value);
    }
}
