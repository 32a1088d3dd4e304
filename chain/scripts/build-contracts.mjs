#!/usr/bin/env node
// Compiles chain/contracts/*.sol with the pinned solc-js (standard JSON, offline) and writes
// one artefact per deployable contract to fixtures/contracts/<Name>.json.
//
//   node scripts/build-contracts.mjs          # write the artefacts
//   node scripts/build-contracts.mjs --check  # compare with the committed ones, exit 1 on drift
//
// Output is byte-for-byte reproducible: fixed compiler settings, no metadata hash / CBOR
// trailer in the bytecode, keys sorted, two-space indentation, trailing newline.

import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const require = createRequire(import.meta.url);

export const CHAIN_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const REPO_DIR = resolve(CHAIN_DIR, "..");
export const CONTRACTS_DIR = join(CHAIN_DIR, "contracts");
export const OUT_DIR = join(REPO_DIR, "fixtures", "contracts");
const NODE_MODULES = join(CHAIN_DIR, "node_modules");

export const SETTINGS = {
  evmVersion: "cancun",
  metadata: { appendCBOR: false, bytecodeHash: "none" },
  optimizer: { enabled: true, runs: 200 },
  outputSelection: {
    "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] },
  },
  remappings: [],
  viaIR: true,
};

function loadSolc() {
  const solc = require("solc");
  const pinned = require("../package.json").dependencies.solc;
  const version = solc.version();
  if (!version.startsWith(pinned + "+")) {
    throw new Error(`solc ${version} in node_modules, package.json pins ${pinned}: run \`npm ci\` in chain/`);
  }
  return solc;
}

/// Reads an import that is not one of our sources: only npm packages under node_modules.
function readImport(path) {
  if (path.startsWith("@openzeppelin/")) {
    const file = join(NODE_MODULES, path);
    if (!file.startsWith(NODE_MODULES + "/")) return { error: `refused import path ${path}` };
    if (!existsSync(file)) return { error: `${path} not found under chain/node_modules (run npm ci)` };
    return { contents: readFileSync(file, "utf8") };
  }
  return { error: `unresolvable import ${path} (only ./ and @openzeppelin/ imports are supported)` };
}

function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    const out = {};
    for (const k of Object.keys(value).sort()) out[k] = sortKeys(value[k]);
    return out;
  }
  return value;
}

export function stableJson(value) {
  return JSON.stringify(sortKeys(value), null, 2) + "\n";
}

/// Compiles everything and returns { files: Map<fileName, text>, warnings: string[] }.
export function buildArtifacts() {
  const solc = loadSolc();
  const names = readdirSync(CONTRACTS_DIR).filter((f) => f.endsWith(".sol")).sort();
  if (names.length === 0) throw new Error(`no .sol files in ${CONTRACTS_DIR}`);
  const sources = {};
  for (const n of names) sources[`contracts/${n}`] = { content: readFileSync(join(CONTRACTS_DIR, n), "utf8") };

  const input = { language: "Solidity", settings: SETTINGS, sources };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: readImport }));

  const errors = [];
  const warnings = [];
  for (const e of output.errors ?? []) {
    (e.severity === "error" ? errors : warnings).push(e.formattedMessage ?? e.message);
  }
  if (errors.length) throw new Error("solc failed:\n" + errors.join("\n"));

  // Hash of every source that went into the compilation (ours and the OpenZeppelin files
  // they import), in source-unit-name order: sha256 over name, NUL, content, NUL, ...
  const used = Object.keys(output.sources ?? {}).sort();
  const hash = createHash("sha256");
  for (const unit of used) {
    const content = sources[unit]?.content ?? readImport(unit).contents;
    if (content === undefined) throw new Error(`cannot re-read source ${unit}`);
    hash.update(unit).update("\0").update(content).update("\0");
  }
  const sourceSha256 = hash.digest("hex");

  const files = new Map();
  for (const unit of Object.keys(sources).sort()) {
    const contracts = output.contracts?.[unit] ?? {};
    for (const name of Object.keys(contracts).sort()) {
      const c = contracts[name];
      const bytecode = c.evm?.bytecode?.object ?? "";
      if (bytecode.length === 0) continue; // interface, abstract contract or library-free unit
      if (files.has(`${name}.json`)) throw new Error(`two contracts named ${name}`);
      const artefact = {
        abi: c.abi,
        bytecode: "0x" + bytecode,
        compiler: solc.version(),
        contractName: name,
        deployedBytecode: "0x" + c.evm.deployedBytecode.object,
        settings: {
          evmVersion: SETTINGS.evmVersion,
          metadata: SETTINGS.metadata,
          optimizer: SETTINGS.optimizer,
          viaIR: SETTINGS.viaIR,
        },
        sourceName: unit,
        sourceSha256,
        sources: used,
      };
      files.set(`${name}.json`, stableJson(artefact));
    }
  }
  return { files, warnings };
}

function describeDrift(name, committed, fresh) {
  if (committed === undefined) return `${name}: missing from fixtures/contracts (new contract?)`;
  if (fresh === undefined) return `${name}: committed but no longer produced by chain/contracts (stale)`;
  let a, b;
  try {
    a = JSON.parse(committed);
    b = JSON.parse(fresh);
  } catch {
    return `${name}: committed file is not valid JSON`;
  }
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  const fields = keys.filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));
  if (fields.length === 0) return `${name}: same content, different formatting`;
  return `${name}: differs in ${fields.join(", ")}`;
}

/// Compares freshly built artefacts with the files in fixtures/contracts. Returns messages.
export function checkArtifacts() {
  const { files, warnings } = buildArtifacts();
  const committed = new Map();
  if (existsSync(OUT_DIR)) {
    for (const f of readdirSync(OUT_DIR).filter((f) => f.endsWith(".json")).sort()) {
      committed.set(f, readFileSync(join(OUT_DIR, f), "utf8"));
    }
  }
  const names = [...new Set([...files.keys(), ...committed.keys()])].sort();
  const drift = names
    .filter((n) => files.get(n) !== committed.get(n))
    .map((n) => describeDrift(n, committed.get(n), files.get(n)));
  return { drift, warnings, count: files.size };
}

/** Runs the check, prints what drifted and exits 1 on drift or compiler warnings. */
export function reportCheck() {
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
}

function main(argv) {
  const check = argv.includes("--check");
  if (check) {
    reportCheck();
    return;
  }
  const { files, warnings } = buildArtifacts();
  for (const w of warnings) console.error(w);
  mkdirSync(OUT_DIR, { recursive: true });
  for (const [name, text] of files) {
    writeFileSync(join(OUT_DIR, name), text);
    console.log(`wrote fixtures/contracts/${name}`);
  }
  for (const f of readdirSync(OUT_DIR).filter((f) => f.endsWith(".json"))) {
    if (!files.has(f)) console.error(`warning: fixtures/contracts/${f} is not produced by any source (stale?)`);
  }
  if (warnings.length && argv.includes("--deny-warnings")) process.exit(1);
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) main(process.argv.slice(2));
