// Test files written to disk (the browser's file chooser takes paths, and a path keeps the
// same modification time when it is chosen again, so the upload page can resume it).
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";

/** Deterministic bytes that do not compress (a seeded xorshift generator). */
function noise(len, seed) {
  const buf = Buffer.alloc(len);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < len; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    buf.writeUInt32LE(x, Math.min(i, len - 4));
  }
  return buf;
}

/**
 * A DICOM Part 10 shaped file: 128-byte zero preamble, "DICM", a file meta group with a
 * transfer syntax, then pixel-like data.
 */
export function dicom(len, seed = 7) {
  const buf = noise(len, seed);
  buf.fill(0, 0, 128);
  buf.write("DICM", 128, "latin1");
  // (0002,0010) Transfer Syntax UID, explicit VR little endian.
  const uid = "1.2.840.10008.1.2.1\0";
  const meta = Buffer.alloc(8 + uid.length);
  meta.writeUInt16LE(0x0002, 0);
  meta.writeUInt16LE(0x0010, 2);
  meta.write("UI", 4, "latin1");
  meta.writeUInt16LE(uid.length, 6);
  meta.write(uid, 8, "latin1");
  meta.copy(buf, 132);
  return buf;
}

/** A Windows program ("MZ" header and PE signature), to be saved under a harmless name. */
export function windowsExecutable(len = 64 * 1024, seed = 11) {
  const buf = noise(len, seed);
  buf.write("MZ", 0, "latin1");
  buf.writeUInt32LE(0x80, 0x3c);
  buf.write("PE\0\0", 0x80, "latin1");
  return buf;
}

export function sha256Hex(buf) {
  return createHash("sha256").update(buf).digest("hex");
}

export function writeFile(path, buf) {
  writeFileSync(path, buf);
  return { path, size: buf.length, sha256: sha256Hex(buf) };
}
