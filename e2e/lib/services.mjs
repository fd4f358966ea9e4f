// The real test services the scenarios run against: the S3 test server (fresh bucket per
// run) and PostgreSQL (fresh database per run); the OpenID Provider is in oidc.mjs.
// Settings come from the environment that scripts/test-services.sh writes (MEDPORT_TEST_*).
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";

export function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run the suite through scripts/test-e2e.sh`);
  }
  return value;
}

export function s3Settings() {
  return {
    endpoint: required("MEDPORT_TEST_S3_ENDPOINT").replace(/\/+$/, ""),
    accessKey: required("MEDPORT_TEST_S3_ACCESS_KEY"),
    secretKey: required("MEDPORT_TEST_S3_SECRET_KEY"),
    region: required("MEDPORT_TEST_S3_REGION"),
  };
}

function s3(method, path) {
  const s = s3Settings();
  // curl signs the request itself (SigV4), as the service script's own check does.
  const out = execFileSync(
    "curl",
    [
      "-sS", "-X", method, "--max-time", "20", "-w", "\n%{http_code}",
      "--aws-sigv4", `aws:amz:${s.region}:s3`, "--user", `${s.accessKey}:${s.secretKey}`,
      `${s.endpoint}/${path}`,
    ],
    { encoding: "utf8" },
  );
  const status = Number(out.slice(out.lastIndexOf("\n") + 1));
  return { status, body: out.slice(0, out.lastIndexOf("\n")) };
}

export function uniqueSuffix() {
  return `${Date.now().toString(36)}${randomBytes(3).toString("hex")}`;
}

/** Creates an empty bucket on the S3 test server and returns its name. */
export function createS3Bucket(prefix) {
  const name = `${prefix}-${uniqueSuffix()}`;
  const res = s3("PUT", name);
  if (res.status !== 200) {
    throw new Error(`creating S3 bucket ${name} answered HTTP ${res.status}: ${res.body}`);
  }
  return name;
}

/** Object keys in a bucket (first page is enough for these tests). */
export function listS3Keys(bucket) {
  const res = s3("GET", `${bucket}?list-type=2`);
  if (res.status !== 200) {
    throw new Error(`listing S3 bucket ${bucket} answered HTTP ${res.status}: ${res.body}`);
  }
  return [...res.body.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1]);
}

function psql(url, sql) {
  execFileSync("psql", ["-v", "ON_ERROR_STOP=1", "-qAt", url, "-c", sql], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
}

/** Creates a fresh database on the PostgreSQL test server; returns its URL and a dropper. */
export function createPostgresDatabase(prefix) {
  const admin = required("MEDPORT_TEST_POSTGRES");
  const name = `${prefix}_${uniqueSuffix()}`.replace(/[^a-z0-9_]/g, "_");
  psql(admin, `CREATE DATABASE ${name}`);
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop() {
      try {
        psql(admin, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } catch (e) {
        console.error(`could not drop database ${name}: ${e.message}`);
      }
    },
  };
}
