// One full run of the scenarios against one kind of deployment: scenarios 1-6 share one
// medport (each builds on what the one before did); scenario 7 has its own medport with a
// one-minute idle timeout, signed in at the start so its wait overlaps scenarios 1-6.
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

    before(async () => {
      if (postgres) {
        database = createPostgresDatabase("medport_e2e");
      }
      const main = new Medport(`${postgres ? "postgres" : "sqlite"}-main`, settings());
      main.createUser(world.admin.email, "admin", world.admin.password);
      main.createUser(world.auditor.email, "auditor", world.auditor.password);
      servers.push(main);
      // PostgreSQL: the second server gets a database of its own (its own users).
      let idleDb = null;
      if (postgres) {
        idleDb = createPostgresDatabase("medport_e2e_idle");
      }
      const idle = new Medport(`${postgres ? "postgres" : "sqlite"}-idle`, {
        ...settings(),
        ...(idleDb ? { DATABASE_URL: idleDb.url } : {}),
        MEDPORT_SESSION_IDLE_MINUTES: "1",
      });
      idle.createUser(world.idleUser.email, "uploader", world.idleUser.password);
      servers.push(idle);
      world.dropIdleDb = idleDb ? () => idleDb.drop() : () => {};
      const [url, idleUrl] = await Promise.all([main.start(), idle.start()]);
      world.url = url;
      world.idleUrl = idleUrl;
      world.main = main;
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
      world.dropIdleDb?.();
      if (world.filesDir) {
        rmSync(world.filesDir, { recursive: true, force: true });
      }
    });

    function scenario(name, fn, needs = []) {
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
          for (const person of world.people) {
            const p = await failurePicture(person.page, `${label}-${fn.name}-${person.label}`.replace(/[^A-Za-z0-9_.-]+/g, "_"));
            if (p) {
              pictures.push(p);
            }
          }
          if (pictures.length > 0) {
            e.message += `\n(pages at the failure: ${pictures.join(", ")})`;
          }
          e.message += `\n(server log, last lines:\n${world.main?.logTail(15) ?? ""})`;
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
    scenario("7. an idle session ends and the user is sent to sign in with a message", idleTimeout);
  });
}
