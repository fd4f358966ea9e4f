// One full run of the scenarios against one kind of deployment: scenarios 1-6 share one
// medport (each builds on what the one before did); scenario 7 has its own medport with a
// one-minute idle timeout, signed in at the start so its wait overlaps scenarios 1-6;
// scenario 8 starts its own medport with single sign-on; scenario 9 is back on the main one
// (the uploader of scenario 2 and a sender with no account).
import { rmSync } from "node:fs";
import { describe, it, before, after } from "node:test";
import { launchBrowser, failurePicture } from "./browser.mjs";
import { Medport } from "./medport.mjs";
import { SlowProxy } from "./slow-proxy.mjs";
import { s3Settings, createS3Bucket, createPostgresDatabase } from "./services.mjs";
import { adminSetup } from "../scenarios/admin-setup.mjs";
import { uploaderUpload } from "../scenarios/upload.mjs";
import { renamedExecutable } from "../scenarios/rejection.mjs";
import { auditorReview } from "../scenarios/auditor.mjs";
import { folderUpload, studyPageStep } from "../scenarios/folder-upload.mjs";
import { cdDrop } from "../scenarios/cd-drop.mjs";
import { idleSignIn, idleTimeout } from "../scenarios/idle-timeout.mjs";
import { singleSignOn } from "../scenarios/single-sign-on.mjs";
import { uploadRequest } from "../scenarios/upload-request.mjs";

/**
 * `postgres`: false runs on SQLite with the default bucket in the local store; true runs
 * on a fresh PostgreSQL database with the default bucket on a fresh S3 bucket.
 */
export function describeRun({ label, postgres }) {
  // The documentation's pictures come from the SQLite run only, so they do not depend on
  // which run finished last.
  if (postgres) {
    delete process.env.MEDPORT_E2E_SCREENSHOTS;
  }
  describe(label, { timeout: 300_000 }, () => {
    const s3 = s3Settings();
    const world = {
      label,
      s3,
      people: [],
      done: new Set(),
      // Each run has a database of its own, so the addresses can be the same every time
      // (and the screenshots stay the same from run to run).
      admin: { email: "admin@clinic.example", password: "first admin passphrase 2024" },
      uploader: {
        email: "dr.lee@clinic.example",
        oneTimePassword: "temporary passphrase from admin",
        password: "my own long upload passphrase",
      },
      auditor: { email: "auditor@clinic.example", password: "auditor reading passphrase" },
      idleUser: { email: "dr.idle@clinic.example", password: "idle session passphrase 1" },
      bucket: { displayName: "Radiology", name: createS3Bucket("medport-e2e-radiology") },
    };
    let browser;
    let database;
    const servers = [];
    const databases = [];

    function settings() {
      const env = {};
      if (postgres) {
        env.DATABASE_URL = database.url;
        env.MEDPORT_S3_BUCKET = createS3Bucket("medport-e2e-default");
        env.MEDPORT_S3_ENDPOINT = s3.endpoint;
        env.MEDPORT_S3_REGION = s3.region;
        env.MEDPORT_S3_ACCESS_KEY_ID = s3.accessKey;
        env.MEDPORT_S3_SECRET_ACCESS_KEY = s3.secretKey;
        env.MEDPORT_S3_PATH_STYLE = "true";
      }
      // The S3 test server listens on 127.0.0.1; admins may only name it with this on.
      env.MEDPORT_ALLOW_LOOPBACK_ENDPOINTS = "true";
      return env;
    }

    /**
     * A medport beside the main one, with `extra` settings (PostgreSQL: on a database of its
     * own, so with its own users), not started yet; stopped after the run.
     */
    function otherServer(name, extra) {
      const kind = postgres ? "postgres" : "sqlite";
      const env = { ...settings(), ...extra };
      if (postgres) {
        const db = createPostgresDatabase(`medport_e2e_${name}`);
        databases.push(db);
        env.DATABASE_URL = db.url;
      }
      const server = new Medport(`${kind}-${name}`, env);
      servers.push(server);
      return server;
    }
    world.otherServer = otherServer;

    before(async () => {
      if (postgres) {
        database = createPostgresDatabase("medport_e2e");
      }
      const main = new Medport(`${postgres ? "postgres" : "sqlite"}-main`, settings());
      main.createUser(world.admin.email, "admin", world.admin.password);
      main.createUser(world.auditor.email, "auditor", world.auditor.password);
      servers.push(main);
      const idle = otherServer("idle", { MEDPORT_SESSION_IDLE_MINUTES: "1" });
      idle.createUser(world.idleUser.email, "uploader", world.idleUser.password);
      const [url, idleUrl] = await Promise.all([main.start(), idle.start()]);
      world.url = url;
      world.idleUrl = idleUrl;
      world.main = main;
      world.idleServer = idle;
      world.proxy = new SlowProxy();
      world.proxyUrl = await world.proxy.start();
      browser = await launchBrowser();
      await idleSignIn(browser, world);
    });

    after(async () => {
      await browser?.close();
      await world.proxy?.stop();
      await Promise.all(servers.map((s) => s.stop()));
      database?.drop();
      for (const db of databases) {
        db.drop();
      }
      if (world.filesDir) {
        rmSync(world.filesDir, { recursive: true, force: true });
      }
    });

    /** `server`: whose log a failure quotes (the world's key; the main server by default). */
    function scenario(name, fn, needs = [], server = "main") {
      it(name, async (t) => {
        const missing = needs.filter((n) => !world.done.has(n));
        if (missing.length > 0) {
          t.skip(`needs ${missing.join(", ")}, which did not pass`);
          return;
        }
        try {
          await fn(browser, world);
          world.done.add(fn.name);
        } catch (e) {
          const pictures = [];
          // A step that waits in vain often follows something the browser refused (a
          // redirect blocked by the CSP): say what it reported so far.
          const problems = [];
          for (const person of world.people) {
            const p = await failurePicture(person.page, `${label}-${fn.name}-${person.label}`.replace(/[^A-Za-z0-9_.-]+/g, "_"));
            if (p) {
              pictures.push(p);
            }
            problems.push(...person.monitor.problems.map((m) => `${person.label}: ${m}`));
          }
          let more = "";
          if (pictures.length > 0) {
            more += `\n(pages at the failure: ${pictures.join(", ")})`;
          }
          if (problems.length > 0) {
            more += `\n(the browser reported: ${problems.join("; ")})`;
          }
          more += `\n(server log, last lines:\n${world[server]?.logTail(15) ?? ""})`;
          e.message += more;
          // The reporter prints the stack, made before the message grew.
          if (typeof e.stack === "string") {
            e.stack += more;
          }
          throw e;
        }
      });
    }

    scenario("1. first admin enrols TOTP, creates an S3 bucket, tests it, creates and grants an uploader", adminSetup);
    scenario("2. uploader changes the one-time password, uploads 30 MiB with the keyboard, reloads mid-upload, resumes, sees it completed with its SHA-256", uploaderUpload, ["adminSetup"]);
    scenario("3. uploader tries a renamed executable and is told it was refused", renamedExecutable, ["uploaderUpload"]);
    scenario("4. auditor finds the events of scenarios 1-3 and downloads the CSV", auditorReview, ["adminSetup", "uploaderUpload"]);
    // After the auditor's: the batch's hundreds of events would push theirs off the page.
    scenario("5. uploader sends a folder of 240 DICOM files as one batch, reloads mid-batch, continues it, sees 240 stored and the junk skipped", folderUpload, ["uploaderUpload"]);
    scenario("5b. uploader opens the folder's study: 3 series, 240 instances, and its ZIP holds every file byte for byte", studyPageStep, ["folderUpload"]);
    scenario("6. uploader drops a CD: DICOMDIR and images sent as one batch, the viewer and system files skipped, a refused file listed as a problem", cdDrop, ["uploaderUpload"]);
    scenario("7. an idle session ends and the user is sent to sign in with a message", idleTimeout, [], "idleServer");
    scenario("8. a clinician signs in through the OpenID Provider as an uploader and signs out of both", singleSignOn, [], "ssoServer");
    scenario("9. uploader creates an upload request; someone without an account opens the link on a phone, sends a folder, gets a receipt with each SHA-256; the uploader sees the files; the revoked link is not valid", uploadRequest, ["uploaderUpload"]);
  });
}
