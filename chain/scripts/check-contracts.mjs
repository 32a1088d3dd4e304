#!/usr/bin/env node
// Rebuilds the contracts in memory and fails if fixtures/contracts differs from chain/contracts.
// Same as `node scripts/build-contracts.mjs --check`.
import { reportCheck } from "./build-contracts.mjs";

reportCheck();
