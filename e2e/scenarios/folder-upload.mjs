// Scenario 5: the uploader sends a whole folder as one batch: 240 DICOM files written by
// pydicom (scripts/dicom-fixtures.sh --many 240: sub-folders, names with and without .dcm)
// beside .DS_Store and Thumbs.db. The folder is chosen with the keyboard; one progress bar
// follows the batch (at most 4 files in flight, the text redrawn a few times a second);
// the page is reloaded mid-batch; choosing the same folder again continues the same batch,
// sending only what the server does not hold yet; the summary says 240 stored, the two
// junk files skipped by name, no problems. The server's view of the batch then has every
// file completed with the SHA-256 the fixtures' manifest gives.
//
// `studyPageStep` checks the same study on the study page and its ZIP; it runs as a
// scenario of its own once that page exists (one line in lib/run.mjs).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { unzipSync } from "fflate";
import { assertLabelled, checkA11y, focusState, screenshot, tabTo } from "../lib/browser.mjs";
import { sha256Hex } from "../lib/files.mjs";
import { artifactsDir } from "../lib/medport.mjs";
import { assertMoves, fileChoosers, sampleProgress } from "./upload.mjs";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const INSTANCES = 240;
const FOLDER = "many";
// Each request's body at this speed (the proxy slows every request on its own): with 4
// files in flight the 4 MiB folder takes about 20 s, long enough to reload in the middle.
const UPLINK_BYTES_PER_SECOND = 64 * 1024;
const PARALLEL = 4;

/**
 * The DICOM fixtures: `many` (the folder of this scenario) and `cd` (a CD file-set), each
 * with its folder and manifest. Idempotent: a second run with the same arguments does
 * nothing.
 */
export function dicomFixtures() {
  const dir = artifactsDir("dicom-fixtures");
  const run = spawnSync("bash", [join(ROOT, "scripts/dicom-fixtures.sh"), dir, "--many", String(INSTANCES)], {
    encoding: "utf8",
  });
  if (run.status !== 0) {
    throw new Error(`scripts/dicom-fixtures.sh exited ${run.status}: ${run.stdout} ${run.stderr}`);
  }
  const set = (name) => {
    const manifest = JSON.parse(readFileSync(join(dir, `${name}.json`), "utf8"));
    return { folder: join(dir, manifest.root), manifest };
  };
  return { many: set("many"), cd: set("cd") };
}

/** GET /batches/{id}, from the page (its session). */
export async function batchStatus(page, id) {
  const answer = await page.evaluate(async (url) => {
    const res = await fetch(url, { headers: { Accept: "application/json" } });
    return { status: res.status, body: await res.text() };
  }, `/batches/${id}`);
  assert.equal(answer.status, 200, `GET /batches/${id}: ${answer.body}`);
  return JSON.parse(answer.body);
}

/** The batch's summary as the page shows it. */
export async function batchSummary(page) {
  const part = async (name) => (await page.locator(`[data-batch-part="${name}"]`).textContent()).trim();
  return {
    status: await part("status"),
    stored: await part("stored"),
    duplicates: await part("duplicates"),
    problems: await part("problem-count"),
    skipped: await part("skipped-count"),
    problemList: await page.locator('[data-batch-part="summary-problems"] li').allTextContents(),
    skippedList: (await page.locator('[data-batch-part="summary-skipped"] li').allTextContents()).sort(),
  };
}

/**
 * Watches this document: how often the page rewrites the batch's progress text, and (with
 * the browser's own resource timings) how many tus requests overlap.
 */
async function watchPage(page) {
  await page.evaluate(() => {
    performance.clearResourceTimings();
    performance.setResourceTimingBufferSize(100_000);
    const counts = document.querySelector('[data-batch-part="counts"]');
    window.__batchRedraws = { n: 0, since: performance.now() };
    new MutationObserver(() => window.__batchRedraws.n++).observe(counts, {
      childList: true,
      characterData: true,
      subtree: true,
    });
  });
}

/** The most tus requests (creations, data, offsets) this document had in flight at once. */
async function mostInFlight(page) {
  return page.evaluate(() => {
    const edges = [];
    for (const e of performance.getEntriesByType("resource")) {
      if (/\/tus\//.test(e.name)) {
        edges.push([e.startTime, 1], [e.responseEnd, -1]);
      }
    }
    // At equal times an end comes before a start: the next file starts once one is done.
    edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    let now = 0;
    let most = 0;
    for (const [, step] of edges) {
      now += step;
      most = Math.max(most, now);
    }
    return most;
  });
}

async function redrawsPerSecond(page) {
  return page.evaluate(() => {
    const r = window.__batchRedraws;
    return r.n / ((performance.now() - r.since) / 1000);
  });
}

/** Upload page, bucket picked by typing, then Tab past the file field to the folder field
 * and Space: the folder goes to the chooser. */
async function chooseFolderWithKeyboard(page, world, folder) {
  await page.locator("[data-dropzone]").waitFor({ state: "visible" });
  await page.locator("body").focus();
  await tabTo(page, (s) => s.id === "bucket", "the bucket list");
  await page.keyboard.type(world.bucket.displayName, { delay: 20 });
  assert.equal(await page.locator("#bucket").inputValue(), world.bucket.id);
  await tabTo(page, (s) => s.id === "folder", "the folder field", 3);
  const onFolder = await focusState(page);
  assert.ok(onFolder.visible, `keyboard focus is not visible on ${onFolder.describe}`);
  const chooser = fileChoosers(page).next();
  await page.keyboard.press("Space");
  await (await chooser).setFiles(folder);
}

/** 423 (locked) and 409 (offset moved) for these uploads: tus's "ask again" after a cut. */
function expectAskAgain(monitor, urls) {
  for (const url of urls) {
    const exact = new RegExp(`${url.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`);
    monitor.expectStatus(exact, 423);
    monitor.expectStatus(exact, 409);
  }
}

/** "N of 240 files, ..." */
async function filesDone(page) {
  const text = (await page.locator('[data-batch-part="counts"]').textContent()) || "";
  const m = /^(\d+) of (\d+) files?/.exec(text);
  return m ? { done: Number(m[1]), total: Number(m[2]), text } : { done: 0, total: 0, text };
}


export async function folderUpload(browser, world) {
  const uploader = world.uploaderPerson;
  const { page, monitor } = uploader;
  const { folder, manifest } = dicomFixtures().many;
  assert.equal(manifest.instances.length, INSTANCES);
  world.folderBatch = { manifest };

  // What the page asks of the server.
  const batches = [];
  const created = [];
  // Set when the reloaded document commits, not when the reload is asked for: the old page
  // may still create an upload in between, and that file is not stored, so it is sent again.
  let reloading = false;
  let reloaded = false;
  let creationsAfterReload = 0;
  page.on("framenavigated", (frame) => {
    if (reloading && frame === page.mainFrame()) {
      reloaded = true;
    }
  });
  page.on("response", async (res) => {
    const req = res.request();
    if (req.method() === "POST" && /\/batches$/.test(res.url()) && res.status() === 201) {
      batches.push((await res.json()).id);
    }
    if (req.method() === "POST" && /\/tus\/$/.test(res.url()) && res.status() === 201) {
      created.push({ url: res.headers().location, afterReload: reloaded });
    }
  });
  let tusRequests = 0;
  page.on("request", (req) => {
    if (/\/tus\//.test(req.url())) {
      tusRequests++;
    }
    if (reloaded && req.method() === "POST" && /\/tus\/$/.test(req.url())) {
      creationsAfterReload++;
    }
  });
  if (page.listenerCount("dialog") === 0) {
    page.on("dialog", (dialog) => (dialog.type() === "beforeunload" ? dialog.accept() : dialog.dismiss()));
  }

  await page.goto("/uploads/new");
  await assertLabelled(page, "upload page with the folder field");
  await page.getByLabel("Folder or CD").waitFor();
  world.proxy.setUplink(UPLINK_BYTES_PER_SECOND);
  const started = Date.now();
  await watchPage(page);
  await chooseFolderWithKeyboard(page, world, folder);

  const status = page.locator('[data-batch-part="status"]');
  await status.filter({ hasText: `Uploading ${INSTANCES} files` }).waitFor();
  assert.equal(await status.getAttribute("role"), "status", "the batch's status is a live region");
  assert.equal(await page.getByLabel("Progress of the folder upload").evaluate((el) => el.tagName), "PROGRESS");
  const bar = page.getByLabel("Progress of the folder upload");

  // Pause with the keyboard: nothing is sent until Resume, which takes focus.
  await sampleProgress(page, bar, async () => (await filesDone(page)).done >= INSTANCES / 10, 60_000);
  await page.getByRole("button", { name: "Pause" }).focus();
  await page.keyboard.press("Enter");
  await status.filter({ hasText: "Paused" }).waitFor();
  assert.match((await focusState(page)).describe, /^button "Resume"/, "focus moves to Resume");
  // The files cut by the pause resume where they stopped: their next request may meet the
  // lease of the one cut (423) or an offset that moved (409), tus's "ask again".
  expectAskAgain(monitor, created.map((c) => c.url));
  const pausedAt = tusRequests;
  const pausedDone = (await filesDone(page)).done;
  await sleep(1500);
  assert.equal(tusRequests, pausedAt, "no tus request while paused");
  assert.equal((await filesDone(page)).done, pausedDone, "no file finished while paused");
  await page.keyboard.press("Enter");
  await status.filter({ hasText: "Uploading the rest of the folder" }).waitFor();
  assert.match((await focusState(page)).describe, /^button "Pause"/, "focus moves back to Pause");

  // Until a quarter of the files are done and the bar has shown a few values. The bar counts
  // bytes, and a run of small files can pass the quarter mark within a redraw or two, so
  // sampling goes on (up to half the files, still well before the reload) until it moved.
  const moved = new Set();
  const values = await sampleProgress(
    page,
    bar,
    async (v) => {
      if (v > 0 && v < 100) moved.add(v);
      const { done } = await filesDone(page);
      return (done >= INSTANCES / 4 && moved.size >= 3) || done >= INSTANCES / 2;
    },
    60_000,
  );
  assertMoves(values, "the folder's progress bar");
  // The rate needs half a second of samples after the resume; on a fast run the quarter
  // mark can come sooner, so the text is read again until it has one (or the batch ends).
  const ratePattern = / at .+\/s, about .+ left$/;
  let firstPart = await filesDone(page);
  for (const until = Date.now() + 10_000; !ratePattern.test(firstPart.text) && Date.now() < until; ) {
    await sleep(100);
    firstPart = await filesDone(page);
  }
  assert.equal(firstPart.total, INSTANCES, `the batch counts the folder's files without the junk: ${firstPart.text}`);
  assert.match(firstPart.text, ratePattern, `the batch shows its rate and time left: ${firstPart.text}`);
  const redraws = await redrawsPerSecond(page);
  assert.ok(redraws <= 5, `the progress text is redrawn at most a few times a second (${redraws.toFixed(1)}/s)`);
  await checkA11y(page, "upload page during a folder upload");
  await screenshot(page, "folder-upload-in-progress");

  // Reload in the middle: the batch is remembered in this browser.
  const beforeReload = await filesDone(page);
  const inFlightBefore = await mostInFlight(page);
  const startedBefore = created.map((c) => c.url);
  assert.ok(beforeReload.done < INSTANCES, `the reload comes mid-batch (${beforeReload.text})`);
  reloading = true;
  await page.reload();
  await page.waitForLoadState("load");
  await page.getByText("A folder upload from this browser did not finish").waitFor();

  // The same folder again: the batch continues. As in scenario 2, Chromium may still hold
  // the connections the reload cut, so a resumed file can meet its lease (423) or an
  // offset that moved (409) once: tus's "ask again", for those uploads only.
  expectAskAgain(monitor, startedBefore);
  await watchPage(page);
  await chooseFolderWithKeyboard(page, world, folder);
  const continued = await status.filter({ hasText: "continues" }).textContent({ timeout: 15_000 });
  const held = /: (\d+) of (\d+) files were already stored/.exec(continued);
  assert.ok(held, `the page says the batch continues and how much was stored: ${continued}`);
  const stored = Number(held[1]);
  assert.ok(stored >= INSTANCES / 4 - PARALLEL && stored < INSTANCES, `files stored before the reload: ${continued}`);

  // The summary.
  const summary = page.locator('[data-batch-part="summary"]');
  await summary.waitFor({ state: "visible", timeout: 120_000 });
  const elapsed = ((Date.now() - started) / 1000).toFixed(1);
  world.proxy.setUplink(0);
  const shown = await batchSummary(page);
  assert.deepEqual(shown, {
    status: `Done. ${INSTANCES} of ${INSTANCES} files stored, 2 skipped.`,
    stored: `${INSTANCES} of ${INSTANCES}`,
    duplicates: "0",
    problems: "0",
    skipped: "2",
    problemList: [],
    // The summary names the skipped files.
    skippedList: manifest.junk.map((j) => `${FOLDER}/${j.relative_path}`).sort(),
  });
  const redrawsAfter = await redrawsPerSecond(page);
  const inFlight = Math.max(inFlightBefore, await mostInFlight(page));
  assert.ok(redrawsAfter <= 5, `the progress text is redrawn at most a few times a second (${redrawsAfter.toFixed(1)}/s)`);
  await checkA11y(page, "folder upload summary");
  await screenshot(page, "folder-upload-summary");

  // One batch over the reload; what was stored before it was not sent again.
  assert.equal(batches.length, 1, `one batch was declared, not one per choice: ${batches.join(", ")}`);
  assert.ok(
    creationsAfterReload <= INSTANCES - stored,
    `after the reload only the files not yet stored were created (${creationsAfterReload} creations, ${stored} stored before)`,
  );
  assert.ok(inFlight <= PARALLEL, `at most ${PARALLEL} files in flight (saw ${inFlight} requests at once)`);
  assert.ok(inFlight >= 2, `files go in parallel (saw at most ${inFlight} requests at once)`);

  // The server's view: every file of the manifest completed with its SHA-256, the junk
  // never sent, and the batch finished.
  const id = batches[0];
  world.folderBatch.id = id;
  const batch = await batchStatus(page, id);
  assert.ok(batch.finished_at, "the batch is finished");
  assert.equal(batch.bucket, world.bucket.id);
  const latest = new Map(batch.files.map((f) => [f.relative_path, f]));
  assert.equal(latest.size, INSTANCES, `the batch holds ${INSTANCES} paths, no junk`);
  for (const inst of manifest.instances) {
    const f = latest.get(`${FOLDER}/${inst.relative_path}`);
    assert.ok(f, `${inst.relative_path} is in the batch`);
    assert.equal(f.status, "completed", `${inst.relative_path} completed`);
    assert.equal(f.sha256, inst.sha256, `${inst.relative_path} stored with its SHA-256`);
    assert.equal(f.size, inst.size);
    assert.equal(f.dicom, "indexed", `${inst.relative_path} was read as DICOM`);
  }
  console.log(
    `# folder: ${INSTANCES} files + 2 junk in ${elapsed} s; stored before the reload ${stored}, ` +
      `created after it ${creationsAfterReload}; most in flight ${inFlight}; ` +
      `progress redraws ${redraws.toFixed(1)}/s and ${redrawsAfter.toFixed(1)}/s`,
  );
  monitor.assertClean();
}

/**
 * The study of scenario 5 on the study page: its series and instances counted, and its
 * ZIP holding every instance byte for byte. Runs after `folderUpload`.
 */
export async function studyPageStep(browser, world) {
  const { page, monitor } = world.uploaderPerson;
  const { manifest } = world.folderBatch;
  await page.goto("/studies");
  await checkA11y(page, "study list");
  const row = page.locator("tr").filter({ hasText: manifest.study_instance_uid });
  await row.getByRole("link").first().click();
  await page.waitForURL(new RegExp(`/studies/${manifest.study_instance_uid.replace(/\./g, "\\.")}$`));
  const summaryValue = (label) =>
    page.locator("tr").filter({ has: page.locator("th", { hasText: new RegExp(`^${label}$`) }) }).first().locator("td");
  assert.equal((await summaryValue("Series").textContent()).trim(), String(manifest.series.length));
  assert.equal((await summaryValue("Instances").textContent()).trim(), String(INSTANCES));
  await checkA11y(page, "study page");

  const download = page.waitForEvent("download");
  await page.getByRole("link", { name: /Download ZIP/ }).click();
  const entries = unzipSync(readFileSync(await (await download).path()));
  const inZip = new Set(Object.values(entries).map((bytes) => sha256Hex(Buffer.from(bytes))));
  for (const inst of manifest.instances) {
    assert.ok(inZip.has(inst.sha256), `the ZIP holds ${inst.relative_path} byte for byte`);
  }
  for (const junk of manifest.junk) {
    assert.ok(!inZip.has(junk.sha256), `the ZIP does not hold ${junk.relative_path}`);
  }
  monitor.assertClean();
}
