// Starts real medport servers (the debug binary the script built) on a temporary data
// directory and a free port, and creates accounts with the command line, as an operator
// would.
import { spawn, spawnSync } from "node:child_process";
import { appendFileSync, writeFileSync, mkdtempSync, rmSync, createWriteStream, readFileSync, mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const READY = /medport is ready on (http:\/\/[0-9.]+:\d+)/;

export function binaryPath() {
  const bin = process.env.MEDPORT_E2E_BIN;
  if (!bin) {
    throw new Error("MEDPORT_E2E_BIN is not set: run the suite through scripts/test-e2e.sh");
  }
  return resolve(bin);
}

/** Where logs and failure pictures go (kept after the run for reading). */
export function artifactsDir(...parts) {
  const dir = resolve(process.env.MEDPORT_E2E_ARTIFACTS || join(tmpdir(), "medport-e2e"), ...parts);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/**
 * A port free on 127.0.0.1 right now, for a server whose address must be known before it
 * starts (single sign-on: the provider is told the callback URL first).
 */
export async function freePort() {
  const probe = createServer();
  await new Promise((ok, fail) => probe.once("error", fail).listen(0, "127.0.0.1", ok));
  const { port } = probe.address();
  await new Promise((ok) => probe.close(ok));
  return port;
}

/** The process environment without any medport setting of the caller's own. */
function cleanEnv() {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith("MEDPORT_") || k === "DATABASE_URL" || k === "RUST_LOG") {
      continue;
    }
    env[k] = v;
  }
  return env;
}

export class Medport {
  constructor(name, settings) {
    this.name = name;
    this.dataDir = mkdtempSync(join(tmpdir(), `medport-e2e-${name}-`));
    this.logPath = join(artifactsDir("logs"), `${name}.log`);
    writeFileSync(this.logPath, "");
    this.env = {
      ...cleanEnv(),
      MEDPORT_DATA_DIR: this.dataDir,
      MEDPORT_BIND: "127.0.0.1:0",
      MEDPORT_LOG_FORMAT: "json",
      RUST_LOG: "info",
      ...settings,
    };
    this.url = null;
    this.child = null;
  }

  /** `medport user create --email E --role R --password-stdin`. */
  createUser(email, role, password) {
    const res = spawnSync(
      binaryPath(),
      ["user", "create", "--email", email, "--role", role, "--password-stdin"],
      { env: this.env, cwd: this.dataDir, input: `${password}\n`, encoding: "utf8" },
    );
    appendFileSync(this.logPath, res.stderr || "");
    if (res.status !== 0 || !res.stdout.includes(`created ${role} ${email}`)) {
      throw new Error(`medport user create exited ${res.status}: ${res.stdout} ${res.stderr}`);
    }
  }

  async start() {
    const log = createWriteStream(this.logPath, { flags: "a" });
    // cwd: the data directory, so no medport.toml of the checkout is picked up.
    this.child = spawn(binaryPath(), ["serve"], {
      env: this.env,
      cwd: this.dataDir,
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child.stdout.pipe(log);
    let seen = "";
    this.url = await new Promise((resolveUrl, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`${this.name}: medport did not say it was ready within 60 s; log: ${this.logPath}`));
      }, 60_000);
      this.child.stderr.on("data", (chunk) => {
        log.write(chunk);
        if (seen !== null) {
          seen += chunk.toString();
          const m = READY.exec(seen);
          if (m) {
            seen = null;
            clearTimeout(timer);
            resolveUrl(m[1]);
          }
        }
      });
      this.child.on("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`${this.name}: medport exited with ${code} before it was ready; log: ${this.logPath}`));
      });
    });
    return this.url;
  }

  logTail(lines = 30) {
    try {
      return readFileSync(this.logPath, "utf8").trim().split("\n").slice(-lines).join("\n");
    } catch {
      return "";
    }
  }

  async stop() {
    const child = this.child;
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    }
    if (!process.env.MEDPORT_E2E_KEEP) {
      rmSync(this.dataDir, { recursive: true, force: true });
    }
  }
}
