// One record per bare import from the repository's own code (node_audit.mjs).
import { appendFileSync, realpathSync, statSync } from 'node:fs';
import { basename, delimiter, join, sep } from 'node:path';

const log = process.env.PORTCULLIS_DEPS_LOG;
const source = process.env.PORTCULLIS_SOURCE_DIR ? realpathSync(process.env.PORTCULLIS_SOURCE_DIR) + sep : null;
const seen = new Set();

function ours(file) {
  try { file = realpathSync(file); } catch { return false; }
  return source !== null && file.startsWith(source) && !file.includes(`${sep}node_modules${sep}`);
}

export function record(specifier, parentFile, path) {
  if (!log || !source) return;
  if (specifier.startsWith('.') || specifier.startsWith('/') || specifier.startsWith('node:') ||
      specifier.startsWith('file:')) return;
  if (!ours(parentFile)) return;
  const parts = specifier.split('/');
  const name = specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
  if (seen.has(name)) return;
  seen.add(name);
  appendFileSync(log, JSON.stringify({
    kind: 'npm', name, path,
    for: process.env.PORTCULLIS_DEPS_FOR || 'test',
    by: process.env.PYTEST_CURRENT_TEST || process.argv[1] || 'node',
  }) + '\n');
}

// A program about to be started: its name and the file PATH (from the child's
// environment) resolves it to, skipping the audit's own shim folder.
export function recordProgram(file, envPairs) {
  if (!log || !file) return;
  let path = null;
  if (file.includes('/')) {
    path = file;
  } else {
    const env = (envPairs || []).find((kv) => kv.startsWith('PATH='));
    const dirs = (env ? env.slice(5) : (process.env.PATH || '')).split(delimiter);
    const shimDir = join(log, '..', 'bin');
    for (const d of dirs) {
      if (!d || d === shimDir) continue;
      try { if (statSync(join(d, file)).isFile()) { path = join(d, file); break; } } catch { /* next */ }
    }
  }
  appendFileSync(log, JSON.stringify({
    kind: 'program', name: basename(file), path,
    for: process.env.PORTCULLIS_DEPS_FOR || 'test',
    by: process.env.PYTEST_CURRENT_TEST || process.argv[1] || 'node',
  }) + '\n');
}
