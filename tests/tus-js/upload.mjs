// Uploads one file to a tus 1.0 server with the real tus-js-client (Node.js build), the way
// a script using an API key would. Used by the HTTP tests (tests/api/tus_js_client.rs) and
// by scripts/bench-upload.sh.
//
//   node upload.mjs --endpoint URL/tus/ --file PATH --key mp_... [options]
//
// Options:
//   --chunk-size N     bytes per PATCH (default 5 MiB; `Infinity` = one PATCH)
//   --filename NAME    Upload-Metadata filename (default: the file's base name)
//   --filetype TYPE    Upload-Metadata filetype (default: application/octet-stream)
//   --bucket ID        Upload-Metadata bucket (default: the server's default bucket)
//   --upload-url URL   resume this upload (HEAD for the offset, then PATCH the rest)
//   --stop-after N     abort once the server has acknowledged at least N bytes
//   --timeout S        give up after S seconds (default 600)
//
// Prints one JSON line on stdout: {"url", "bytes", "aborted", "seconds"}, where bytes is the
// offset the server acknowledged last. Exits 1 with the error on stderr on any failure
// (retries are off, so a failure is never hidden behind a retry).
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';

import { Upload } from 'tus-js-client';

function fail(message) {
  process.stderr.write(`tus-js upload failed: ${message}\n`);
  process.exit(1);
}

function describe(err) {
  // DetailedError carries the server's answer; show its status and body to the test.
  const res = err && err.originalResponse;
  if (res) {
    return `${err.message} (status ${res.getStatus()}, body ${JSON.stringify(res.getBody())})`;
  }
  return err && err.stack ? err.stack : String(err);
}

function number(name, text) {
  if (text === 'Infinity') return Number.POSITIVE_INFINITY;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n <= 0) fail(`--${name} must be a positive integer`);
  return n;
}

const { values: args } = parseArgs({
  options: {
    endpoint: { type: 'string' },
    file: { type: 'string' },
    key: { type: 'string' },
    'chunk-size': { type: 'string', default: String(5 * 1024 * 1024) },
    filename: { type: 'string' },
    filetype: { type: 'string', default: 'application/octet-stream' },
    bucket: { type: 'string' },
    'upload-url': { type: 'string' },
    'stop-after': { type: 'string' },
    timeout: { type: 'string', default: '600' },
  },
  strict: true,
});

for (const required of ['endpoint', 'file', 'key']) {
  if (!args[required]) fail(`--${required} is required`);
}
const chunkSize = number('chunk-size', args['chunk-size']);
const stopAfter = args['stop-after'] ? number('stop-after', args['stop-after']) : null;
const timeout = number('timeout', args.timeout);
const size = (await stat(args.file)).size;

const metadata = {
  filename: args.filename ?? basename(args.file),
  filetype: args.filetype,
};
if (args.bucket) metadata.bucket = args.bucket;

const started = process.hrtime.bigint();
const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
let acknowledged = 0;

const file = createReadStream(args.file);
const upload = new Upload(file, {
  endpoint: args.endpoint,
  uploadUrl: args['upload-url'] ?? null,
  chunkSize,
  uploadSize: size,
  metadata,
  headers: { Authorization: `Bearer ${args.key}` },
  retryDelays: null,
  storeFingerprintForResuming: false,
  onChunkComplete(_chunk, accepted) {
    acknowledged = accepted;
    if (stopAfter !== null && accepted >= stopAfter && accepted < size) {
      // Stops before the next PATCH is sent; the upload stays resumable on the server.
      upload.abort().then(() => {
        file.destroy();
        process.stdout.write(
          `${JSON.stringify({ url: upload.url, bytes: accepted, aborted: true, seconds: seconds() })}\n`,
        );
        process.exit(0);
      }, (err) => fail(describe(err)));
    }
  },
  onError(err) {
    fail(describe(err));
  },
  onSuccess() {
    file.destroy();
    process.stdout.write(
      `${JSON.stringify({ url: upload.url, bytes: acknowledged || size, aborted: false, seconds: seconds() })}\n`,
    );
    process.exit(0);
  },
});

// A hung server fails the caller instead of hanging it.
setTimeout(() => fail(`no result after ${timeout} s`), timeout * 1000).unref();
upload.start();
