// RFC 6238 time-based one-time passwords (HMAC-SHA-1, 30-second steps, 6 digits), as an
// authenticator app computes them from the key the enrolment page shows.
import { createHmac } from "node:crypto";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

export function base32Decode(text) {
  const clean = text.replace(/[\s=-]/g, "").toUpperCase();
  let bits = 0;
  let value = 0;
  const out = [];
  for (const ch of clean) {
    const idx = ALPHABET.indexOf(ch);
    if (idx < 0) {
      throw new Error(`not a base32 character: ${JSON.stringify(ch)}`);
    }
    value = (value << 5) | idx;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

export function hotp(key, counter) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac("sha1", key).update(msg).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const code = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return String(code).padStart(6, "0");
}

export function totp(base32Secret, unixSeconds = Date.now() / 1000) {
  return hotp(base32Decode(base32Secret), Math.floor(unixSeconds / 30));
}

/** Seconds left in the current 30-second step. */
export function secondsLeftInStep(unixSeconds = Date.now() / 1000) {
  return 30 - (unixSeconds % 30);
}
