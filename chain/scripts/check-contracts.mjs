#!/usr/bin/env node
// Rebuilds the contracts in memory and fails if fixtures/contracts differs from chain/contracts.
// Same as `node scripts/build-contracts.mjs --check`.
import { checkArtifacts } from "./build-contracts.mjs";

const { drift, warnings, count } = checkArtifacts();
for (const w of warnings) console.error(w);
if (drift.length) {
  console.error("fixtures/contracts is out of date with chain/contracts:");
  for (const d of drift) console.error("  " + d);
  console.error("rebuild with: cd chain && npm ci && node scripts/build-contracts.mjs");
  process.exit(1);
}
if (warnings.length) {
  console.error(`${warnings.length} compiler warning(s)`);
  process.exit(1);
}
console.log(`fixtures/contracts: ${count} artefacts up to date`);
