// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {FlTask, TaskParams} from "./FlTask.sol";

/// @title Registry and factory of FL Alliance tasks.
/// @notice Anyone may create a task (deploying an FlTask with the given parameters, the caller
/// recorded as its creator, the aggregator named in the parameters) and anyone may fund a
/// task's reward pool. All tasks share one stake/reward token.
contract TaskManager is ReentrancyGuard {
    using SafeERC20 for IERC20;

    IERC20 public immutable token;

    FlTask[] private _tasks;
    mapping(address => uint256) private _idPlusOne;

    event TaskCreated(
        uint256 indexed taskId,
        address indexed task,
        address indexed creator,
        address aggregator,
        bytes32 modelSpecHash,
        bytes32 initialModelHash
    );
    event TaskFunded(uint256 indexed taskId, address indexed funder, uint256 amount);

    error UnknownTask(uint256 taskId);
    error ZeroAmount();
    error ZeroToken();

    constructor(IERC20 token_) {
        if (address(token_) == address(0)) revert ZeroToken();
        token = token_;
    }

    /// Deploys a task with parameters `p` (validated by FlTask's constructor) and records it.
    function createTask(TaskParams calldata p) external returns (uint256 taskId, address task) {
        taskId = _tasks.length;
        FlTask t = new FlTask(p, token, address(this), msg.sender, taskId);
        _tasks.push(t);
        _idPlusOne[address(t)] = taskId + 1;
        task = address(t);
        emit TaskCreated(taskId, task, msg.sender, p.aggregator, p.modelSpecHash, p.initialModelHash);
    }

    /// Moves `amount` tokens from the caller (who approved this manager) into the task's
    /// reward pool.
    function fundTask(uint256 taskId, uint256 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        FlTask t = _task(taskId);
        token.safeTransferFrom(msg.sender, address(t), amount);
        t.creditPool(msg.sender, amount);
        emit TaskFunded(taskId, msg.sender, amount);
    }

    function taskCount() external view returns (uint256) {
        return _tasks.length;
    }

    /// Address of the task with id `taskId` (ids are 0-based indices).
    function taskAt(uint256 taskId) external view returns (address) {
        return address(_task(taskId));
    }

    /// Id of the task at `task`, or found = false if it was not created by this manager.
    function taskIdOf(address task) external view returns (bool found, uint256 taskId) {
        uint256 v = _idPlusOne[task];
        if (v == 0) return (false, 0);
        return (true, v - 1);
    }

    /// Addresses of tasks [`start`, `start + count`) (clamped to the task count).
    function tasks(uint256 start, uint256 count) external view returns (address[] memory out) {
        uint256 len = _tasks.length;
        if (start >= len) return new address[](0);
        uint256 end = start + count > len ? len : start + count;
        out = new address[](end - start);
        for (uint256 i = start; i < end; ++i) {
            out[i - start] = address(_tasks[i]);
        }
    }

    function _task(uint256 taskId) private view returns (FlTask) {
        if (taskId >= _tasks.length) revert UnknownTask(taskId);
        return _tasks[taskId];
    }
}
