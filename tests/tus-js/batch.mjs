// Sends every file under a folder to a tus 1.0 server as one batch, with the real
// tus-js-client (Node.js build) and an API key, the way a script (or the browser page) sends
// a CD: POST /batches, then each file with metadata filename, relativePath and batch, a
// bounded number at once, then POST /batches/{id}/finish. Used by scripts/bench-batch.sh.
//
//   node batch.mjs --base URL --dir PATH --key mp_... [--parallel 4] [--bucket ID]
//
// Prints one JSON line on stdout: {"batch", "files", "bytes", "seconds", "stored",
// "problems"}; `seconds` covers the first POST /batches to the finish. Exits 1 with the
// error on stderr when any file fails (retries are off, so nothing is hidden).
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { parseArgs } from 'node:util';

import { Upload } from 'tus-js-client';

function fail(message) {
  process.stderr.write(`tus-js batch failed: ${message}\n`);
  process.exit(1);
}

const { values: args } = parseArgs({
  options: {
    base: { type: 'string' },
    dir: { type: 'string' },
    key: { type: 'string' },
    parallel: { type: 'string', default: '4' },
    bucket: { type: 'string' },
  },
  strict: true,
});
if (!args.base || !args.dir || !args.key) fail('--base, --dir and --key are required');
const parallel = Number(args.parallel);
if (!Number.isSafeInteger(parallel) || parallel < 1) fail('--parallel must be a positive integer');
const auth = { Authorization: `Bearer ${args.key}` };

async function walk(dir) {
  const out = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await walk(path)));
    else if (entry.isFile()) out.push(path);
  }
  return out;
}

async function json(method, path, body) {
  const res = await fetch(`${args.base}${path}`, {
    method,
    headers: { ...auth, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) fail(`${method} ${path}: ${res.status} ${text}`);
  return JSON.parse(text);
}

function send(file, size, relativePath, batch) {
  return new Promise((resolve, reject) => {
    const metadata = {
      filename: relativePath.split('/').pop(),
      relativePath,
      batch,
    };
    if (args.bucket) metadata.bucket = args.bucket;
    const upload = new Upload(createReadStream(file), {
      endpoint: `${args.base}/tus/`,
      uploadSize: size,
      chunkSize: Number.POSITIVE_INFINITY,
      // One request per small file: creation-with-upload.
      uploadDataDuringCreation: true,
      retryDelays: null,
      storeFingerprintForResuming: false,
      headers: auth,
      metadata,
      onError: (err) => reject(err),
      onSuccess: () => resolve(),
    });
    upload.start();
  });
}

const files = await walk(args.dir);
const sized = await Promise.all(files.map(async (f) => ({ path: f, size: (await stat(f)).size })));
const bytes = sized.reduce((sum, f) => sum + f.size, 0);

const started = process.hrtime.bigint();
const batch = await json('POST', '/batches', {
  bucket: args.bucket ?? null,
  files: sized.length,
  bytes,
});
let next = 0;
async function worker() {
  while (next < sized.length) {
    const file = sized[next++];
    const rel = relative(args.dir, file.path).split(sep).join('/');
    try {
      await send(file.path, file.size, rel, batch.id);
    } catch (err) {
      const res = err && err.originalResponse;
      fail(`${rel}: ${res ? `${res.getStatus()} ${res.getBody()}` : err}`);
    }
  }
}
await Promise.all(Array.from({ length: parallel }, worker));
const summary = await json('POST', `/batches/${batch.id}/finish`, { skipped: 0 });
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
process.stdout.write(
  `${JSON.stringify({
    batch: batch.id,
    files: sized.length,
    bytes,
    seconds,
    stored: summary.stored,
    problems: summary.problems,
  })}\n`,
);
