// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @title FLOCK, the stake and reward token on local and test chains.
/// @notice Plain ERC-20 with 18 decimals; the owner may mint. Production deployments use the
/// real FLOCK token instead: the task contracts only need IERC20.
contract FlockToken is ERC20, Ownable {
    constructor(address initialOwner) ERC20("FLock Token", "FLOCK") Ownable(initialOwner) {}

    /// Mints `amount` (in wei, 18 decimals) to `to`. Owner only.
    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }
}
