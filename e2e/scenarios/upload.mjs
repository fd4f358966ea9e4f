// Scenario 2: the uploader signs in with the one-time password, must choose their own, then
// uploads a 30 MiB DICOM-shaped file with the keyboard alone. The progress bar moves through
// several values; the page is reloaded mid-upload; choosing the file again resumes from
// where the server stopped (not from byte 0); the upload completes and the history row
// shows it completed with the SHA-256 the test computed. The stored object is on the S3
// bucket and downloads back byte for byte.
import assert from "node:assert/strict";
import { readFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { newPerson, checkA11y, assertLabelled, screenshot, tabTo, focusState } from "../lib/browser.mjs";
import { dicom, writeFile, sha256Hex } from "../lib/files.mjs";
import { listS3Keys } from "../lib/services.mjs";
import { signIn } from "./common.mjs";

const FILE_SIZE = 30 * 1024 * 1024;
// The uploader's uplink (a slow proxy in front of medport): slow enough for several progress
// updates and a reload mid-upload, fast enough to keep the scenario short (about 10 s for
// the whole file).
const UPLOAD_BYTES_PER_SECOND = 3 * 1024 * 1024;

export function testFilesDir(world) {
  world.filesDir ??= mkdtempSync(join(tmpdir(), "medport-e2e-files-"));
  return world.filesDir;
}

/**
 * File choosers the page opens, in order. The listener is attached once, early: Playwright
 * only starts intercepting the chooser when a listener exists, and a key press that races
 * that set-up would open a native dialog the test never sees.
 */
export function fileChoosers(page) {
  if (!page.__fileChoosers) {
    const ready = [];
    const waiting = [];
    page.on("filechooser", (chooser) => {
      const next = waiting.shift();
      if (next) {
        next(chooser);
      } else {
        ready.push(chooser);
      }
    });
    page.__fileChoosers = {
      next(timeoutMs = 10_000) {
        if (ready.length > 0) {
          return Promise.resolve(ready.shift());
        }
        return new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error("no file chooser opened")), timeoutMs);
          waiting.push((c) => {
            clearTimeout(timer);
            resolve(c);
          });
        });
      },
    };
  }
  return page.__fileChoosers;
}

/**
 * On the upload page, with the keyboard alone: Tab to the bucket list, pick the bucket by
 * typing its name, Tab to the file field, press Space to open the file chooser, choose.
 */
export async function chooseFileWithKeyboard(page, bucketName, bucketId, path) {
  // The upload script has taken the form over (the drop zone only shows then).
  await page.locator("[data-dropzone]").waitFor({ state: "visible" });
  await page.locator("body").focus();
  await tabTo(page, (s) => s.id === "bucket", "the bucket list");
  await page.keyboard.type(bucketName, { delay: 20 });
  assert.equal(await page.locator("#bucket").inputValue(), bucketId, `typing "${bucketName}" picks that bucket`);
  await page.keyboard.press("Tab");
  const onFile = await focusState(page);
  assert.equal(onFile.id, "file", "Tab from the bucket list reaches the file field");
  assert.ok(onFile.visible, `keyboard focus is not visible on ${onFile.describe}`);
  const chooser = fileChoosers(page).next();
  await page.keyboard.press("Space");
  await (await chooser).setFiles(path);
}

/**
 * Reads the progress bar's value every 100 ms until `until(value)` (which may be async) or
 * the time is up; returns the values seen, without repeats.
 */
export async function sampleProgress(page, bar, until, timeoutMs) {
  const seen = [];
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await bar.evaluate((el) => el.value);
    if (seen.length === 0 || seen[seen.length - 1] !== v) {
      seen.push(v);
    }
    if (await until(v)) {
      return seen;
    }
    await sleep(100);
  }
  throw new Error(`progress did not get there in ${timeoutMs} ms; values seen: ${seen.join(", ")}`);
}

export function assertMoves(values, what) {
  const between = values.filter((v) => v > 0 && v < 100);
  assert.ok(
    new Set(between).size >= 3,
    `${what}: the progress bar should pass through several values between 0 and 100, saw ${JSON.stringify(values)}`,
  );
  for (let i = 1; i < values.length; i++) {
    assert.ok(values[i] >= values[i - 1], `${what}: progress went backwards: ${JSON.stringify(values)}`);
  }
}

export async function uploaderUpload(browser, world) {
  const uploader = await newPerson(browser, world.url, "uploader", { proxy: world.proxyUrl });
  const { page } = uploader;
  world.people.push(uploader);
  world.uploaderPerson = uploader;
  fileChoosers(page);

  // First sign-in: the one-time password only opens the password change.
  await page.goto("/login");
  await signIn(page, world.uploader.email, world.uploader.oneTimePassword);
  await page.waitForURL(/\/account\/password$/);
  await page.goto("/uploads/new");
  await page.waitForURL(/\/account\/password$/, { timeout: 5_000 });
  await assertLabelled(page, "password change page");
  await checkA11y(page, "password change page");
  await page.getByLabel("One-time password from your administrator").fill(world.uploader.oneTimePassword);
  await page.getByLabel("New password", { exact: true }).fill(world.uploader.password);
  await page.getByLabel("Confirm new password").fill(world.uploader.password);
  await page.getByRole("button", { name: "Set password" }).click();
  await page.waitForURL(/\/account$/);

  // The file and its checksum, computed here.
  const file = writeFile(join(testFilesDir(world), "CT-chest-0001.dcm"), dicom(FILE_SIZE));
  world.dicom = file;

  const patches = [];
  page.on("request", (req) => {
    if (req.method() === "PATCH" && /\/tus\/[0-9a-f-]{36}$/.test(req.url())) {
      const patch = { url: req.url(), offset: Number(req.headers()["upload-offset"]), status: null };
      patches.push(patch);
      req.response().then(
        (res) => (patch.status = res?.status() ?? null),
        () => {},
      );
    }
  });
  let creations = 0;
  page.on("request", (req) => {
    if (req.method() === "POST" && /\/tus\/$/.test(req.url())) {
      creations++;
    }
  });
  const tusAnswers = [];
  page.on("response", (res) => {
    if (/\/tus\//.test(res.url())) {
      tusAnswers.push(`${new Date().toISOString().slice(17, 23)} ${res.request().method()} ${res.status()} offset=${res.headers()["upload-offset"] ?? "-"}`);
    }
  });
  page.on("requestfailed", (req) => {
    if (/\/tus\//.test(req.url())) {
      tusAnswers.push(`${new Date().toISOString().slice(17, 23)} ${req.method()} failed: ${req.failure()?.errorText}`);
    }
  });
  let beforeUnloadDialogs = 0;
  page.on("dialog", async (dialog) => {
    if (dialog.type() === "beforeunload") {
      beforeUnloadDialogs++;
      await dialog.accept();
    } else {
      await dialog.dismiss();
    }
  });

  await page.goto("/uploads/new");
  await assertLabelled(page, "upload page");
  await checkA11y(page, "upload page");
  world.proxy.setUplink(UPLOAD_BYTES_PER_SECOND);
  await chooseFileWithKeyboard(page, world.bucket.displayName, world.bucket.id, file.path);

  const item = page.locator(".upload-item").filter({ hasText: "CT-chest-0001.dcm" });
  const bar = item.locator("progress");
  await item.waitFor();
  assert.equal(await bar.getAttribute("aria-label"), "Upload progress of CT-chest-0001.dcm");
  const firstRun = await sampleProgress(page, bar, (v) => v >= 30, 30_000);
  assertMoves(firstRun, "before the reload");
  assert.match(await item.locator('[data-field="rate"]').textContent(), / of 30 MiB/);
  await checkA11y(page, "upload page during an upload");
  await screenshot(page, "upload-in-progress");

  // Reload in the middle: the request is cut off; what arrived stays on the server.
  const sentBeforeReload = patches.length;
  assert.ok(sentBeforeReload >= 1, "the upload sent its bytes with tus PATCH requests");
  const uploadUrl = patches[0].url;
  await page.reload();
  await page.waitForLoadState("load");
  assert.equal(await page.locator(".upload-item").count(), 0, "a reloaded page starts with an empty list");
  await page.getByText("One upload from this browser did not finish.").waitFor();

  // Choose the same file again: the page finds the earlier upload and resumes it. For a
  // moment after a reload Chromium still holds the connection of the request it cut off, so
  // the server is still storing what that request sent: a new PATCH meets its lease (423,
  // "locked") or an offset that moved on since the HEAD (409, "conflict"). Both say "ask
  // again" in tus, and the client does. The browser logs those answers; they are expected
  // here, and only for this upload.
  const thisUpload = new RegExp(`${uploadUrl.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`);
  uploader.monitor.expectStatus(thisUpload, 423);
  uploader.monitor.expectStatus(thisUpload, 409);
  await chooseFileWithKeyboard(page, world.bucket.displayName, world.bucket.id, file.path);
  await item.waitFor();
  const secondRun = await sampleProgress(page, bar, (v) => v >= 100, 60_000);
  // Every answer is in once the page says the upload is done.
  await item.getByText("Uploaded. The server is checking the file.").waitFor();
  const resumed = patches.slice(sentBeforeReload);
  const tus = `tus answers: ${tusAnswers.join("; ")}`;
  assert.equal(creations, 1, `resuming created no second upload (${tus})`);
  for (const p of resumed) {
    assert.equal(p.url, uploadUrl, "the same tus upload was continued, not a new one created");
  }
  const carried = resumed.filter((p) => p.status === 204);
  assert.ok(carried.length >= 1, `a resumed PATCH was accepted (${tus})`);
  const resumedAt = carried[0].offset;
  assert.ok(
    resumedAt > 0 && resumedAt < FILE_SIZE,
    `the resumed upload continued from the server's offset, not from byte 0 (Upload-Offset ${resumedAt}; ${tus})`,
  );
  // From the resumed offset on, the bar moves forward through several values to 100.
  const resumedPercent = (resumedAt / FILE_SIZE) * 100;
  const fromResume = secondRun.slice(secondRun.findIndex((v) => v >= resumedPercent - 0.5));
  assertMoves(fromResume, `after resuming at ${resumedPercent.toFixed(1)}% (${tus})`);
  assert.equal(fromResume[fromResume.length - 1], 100);
  await item.locator('[data-status="Completed"]').waitFor({ timeout: 60_000 });
  world.proxy.setUplink(0);
  world.uploadId = uploadUrl.split("/").pop();
  assert.ok(beforeUnloadDialogs >= 1, "leaving the page during an upload asks for confirmation first");
  console.log(
    `# progress before the reload: ${firstRun.map((v) => v.toFixed(1)).join(" ")}\n` +
      `# resumed at Upload-Offset ${resumedAt} of ${FILE_SIZE}; after: ${secondRun.map((v) => v.toFixed(1)).join(" ")}\n` +
      `# ${tus}\n` +
      `# leave-page warnings during the upload: ${beforeUnloadDialogs}`,
  );

  // History: completed, with the SHA-256 computed here.
  await page.goto("/uploads");
  const row = page.locator(`#upload-${world.uploadId}`);
  await row.waitFor();
  assert.equal((await row.getByRole("link", { name: "CT-chest-0001.dcm", exact: true }).count()), 1);
  assert.equal((await row.locator(".upload-state .badge").textContent()).trim(), "Completed");
  const shaLink = row.locator(`a[title="${file.sha256}"]`);
  assert.equal(await shaLink.count(), 1, `the history row carries the full SHA-256 ${file.sha256}`);
  const short = (await shaLink.textContent()).trim().replace(/…$/, "");
  assert.ok(short.length >= 8 && file.sha256.startsWith(short), `the short SHA-256 shown (${short}) is the start of the real one`);
  await checkA11y(page, "upload history");
  await screenshot(page, "history");

  // Detail page: the full SHA-256; the download returns the same bytes.
  await page.goto(`/uploads/${world.uploadId}`);
  assert.equal((await page.locator("code.upload-sha").textContent()).trim(), file.sha256);
  await checkA11y(page, "upload detail page");
  const download = page.waitForEvent("download");
  await page.getByRole("link", { name: "Download CT-chest-0001.dcm" }).first().click();
  const got = readFileSync(await (await download).path());
  assert.equal(got.length, FILE_SIZE, "the download has the file's size");
  assert.equal(sha256Hex(got), file.sha256, "the download has the uploaded bytes");

  // The object is on the admin's S3 bucket.
  assert.ok(listS3Keys(world.bucket.name).length >= 1, `the file was stored on S3 bucket ${world.bucket.name}`);

  uploader.monitor.assertClean();
}
