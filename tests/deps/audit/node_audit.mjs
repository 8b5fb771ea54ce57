// Records, for tests/deps/check_deps.py, the packages that the repository's own
// JavaScript imports: NODE_OPTIONS=--import loads this into every node the suite
// starts (tests/deps/README.md).  Inactive unless PORTCULLIS_DEPS_LOG is set.
import { register, createRequire } from 'node:module';

if (process.env.PORTCULLIS_DEPS_LOG && process.env.PORTCULLIS_SOURCE_DIR) {
  register('./node_hooks.mjs', import.meta.url);
  // CommonJS require() does not pass through the hooks above in Node 20.
  const Module = createRequire(import.meta.url)('node:module');
  const { record } = await import('./node_record.mjs');
  const load = Module._load;
  Module._load = function (request, parent, isMain) {
    try {
      if (parent && parent.filename) {
        const path = Module._resolveFilename(request, parent, isMain);
        record(request, parent.filename, path);
      }
    } catch { /* the real load below reports it */ }
    return load.apply(this, arguments);
  };
  // Programs started by path (playwright starts /usr/bin/chromium so) pass no shim on
  // PATH: every spawn, exec, execFile and fork goes through ChildProcess#spawn.
  // The synchronous ones do not: their exports are wrapped, and the ESM view of
  // node:child_process re-synced.
  const cp = createRequire(import.meta.url)('node:child_process');
  const { recordProgram } = await import('./node_record.mjs');
  const spawn = cp.ChildProcess.prototype.spawn;
  cp.ChildProcess.prototype.spawn = function (options) {
    try { recordProgram(options && options.file, options && options.envPairs); } catch { /* never breaks */ }
    return spawn.apply(this, arguments);
  };
  for (const fn of ['spawnSync', 'execFileSync']) {
    const orig = cp[fn];
    cp[fn] = function (file, args, options) {
      try {
        const opts = Array.isArray(args) ? options : args;
        const env = opts && opts.env ? Object.entries(opts.env).map(([k, v]) => `${k}=${v}`) : null;
        recordProgram(file, env);
      } catch { /* never breaks */ }
      return orig.apply(this, arguments);
    };
  }
  Module.syncBuiltinESMExports();
}
