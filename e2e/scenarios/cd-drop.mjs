// Scenario 6: the uploader drops a CD on the drop zone: the pydicom file-set (DICOMDIR and
// extensionless PT000000/ST000000/SE00000n/IM00000n files) with what real CDs carry beside
// it: autorun.inf, a viewer program, a macOS bundle and resource fork, and a file the server
// does not take. The page walks the dropped folder (its directory reader hands the entries
// out two at a time, so reading goes on until an empty batch), skips the junk, sends the
// rest as one batch, and lists the refused file as a problem without stopping the batch.
//
// A real drag from the desktop cannot be made in a headless browser, and a page cannot
// build directory entries itself: the drop event here carries entries that behave like
// Chromium's (FileSystemDirectoryEntry / FileSystemFileEntry), holding the fixture files'
// real bytes.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { checkA11y } from "../lib/browser.mjs";
import { batchStatus, batchSummary, dicomFixtures } from "./folder-upload.mjs";

const ROOT_NAME = "CD";
// What a CD carries besides the study, and what the page must skip (as the summary names it).
const JUNK = [
  { path: "autorun.inf", bytes: "[autorun]\r\nopen=VIEWER\\viewer.exe\r\n", shown: "CD/autorun.inf" },
  { path: "VIEWER/viewer.exe", bytes: "MZ not really a program", shown: "CD/VIEWER/viewer.exe" },
  { path: "VIEWER/index.html", bytes: "<!doctype html><title>Viewer</title>", shown: "CD/VIEWER/index.html" },
  { path: "Viewer.app/Contents/MacOS/viewer", bytes: "not really a program", shown: "CD/Viewer.app/ (2 files)" },
  { path: "Viewer.app/Contents/Info.plist", bytes: "<plist/>", shown: null },
  { path: "__MACOSX/PT000000/._IM000000", bytes: "resource fork", shown: "CD/__MACOSX/ (1 file)" },
];
// Sent, and refused by the server by its name: a per-file problem.
const REFUSED = { path: "REPORT.docx", bytes: "not a report" };

export async function cdDrop(browser, world) {
  const { page, monitor } = world.uploaderPerson;
  const { folder, manifest } = dicomFixtures().cd;
  const study = [
    { path: manifest.dicomdir.relative_path, ...manifest.dicomdir },
    ...manifest.instances.map((i) => ({ path: i.relative_path, ...i })),
  ];
  const files = [
    ...study.map((f) => ({ path: f.path, base64: readFileSync(join(folder, f.path)).toString("base64") })),
    ...[...JUNK, REFUSED].map((f) => ({ path: f.path, base64: Buffer.from(f.bytes).toString("base64") })),
  ];

  // The refusal of REPORT.docx is logged by the browser as a failed tus creation.
  monitor.expectStatus(/\/tus\/$/, 415);
  let batchId = null;
  page.on("response", async (res) => {
    if (res.request().method() === "POST" && /\/batches$/.test(res.url()) && res.status() === 201) {
      batchId = (await res.json()).id;
    }
  });
  await page.goto("/uploads/new");
  await page.locator("[data-dropzone]").waitFor({ state: "visible" });
  await page.locator("#bucket").selectOption(world.bucket.id);

  await page.evaluate(
    ({ root, files }) => {
      const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const tree = { dirs: new Map(), files: [] };
      for (const f of files) {
        const parts = f.path.split("/");
        let node = tree;
        for (const dir of parts.slice(0, -1)) {
          if (!node.dirs.has(dir)) {
            node.dirs.set(dir, { dirs: new Map(), files: [] });
          }
          node = node.dirs.get(dir);
        }
        node.files.push({ name: parts[parts.length - 1], file: new File([bytes(f.base64)], parts[parts.length - 1], { lastModified: 1700000000000 }) });
      }
      const fileEntry = (path, file) => ({
        isFile: true,
        isDirectory: false,
        name: file.name,
        fullPath: path,
        file: (ok) => setTimeout(() => ok(file)),
      });
      const dirEntry = (path, node) => {
        const children = [
          ...[...node.dirs].map(([name, child]) => dirEntry(`${path}/${name}`, child)),
          ...node.files.map((f) => fileEntry(`${path}/${f.name}`, f.file)),
        ];
        return {
          isFile: false,
          isDirectory: true,
          name: path.split("/").pop(),
          fullPath: path,
          createReader() {
            let at = 0;
            return {
              readEntries(ok) {
                const batch = children.slice(at, at + 2);
                at += batch.length;
                setTimeout(() => ok(batch));
              },
            };
          },
        };
      };
      const entry = dirEntry(`/${root}`, tree);
      const drop = new Event("drop", { bubbles: true, cancelable: true });
      Object.defineProperty(drop, "dataTransfer", {
        value: { types: ["Files"], files: [], items: [{ kind: "file", webkitGetAsEntry: () => entry }] },
      });
      document.querySelector("[data-dropzone]").dispatchEvent(drop);
    },
    { root: ROOT_NAME, files },
  );

  const summary = page.locator('[data-batch-part="summary"]');
  await summary.waitFor({ state: "visible", timeout: 60_000 });
  const sent = study.length + 1;
  const shown = await batchSummary(page);
  assert.equal(shown.status, `Done. ${study.length} of ${sent} files stored, 1 with a problem, ${JUNK.length} skipped.`);
  assert.equal(shown.stored, `${study.length} of ${sent}`);
  assert.equal(shown.problems, "1");
  assert.equal(shown.skipped, String(JUNK.length));
  assert.deepEqual(shown.skippedList, JUNK.filter((j) => j.shown).map((j) => j.shown).sort());
  assert.equal(shown.problemList.length, 1);
  assert.match(shown.problemList[0], /^CD\/REPORT\.docx: .*not accepted/, `the refused file and why: ${shown.problemList[0]}`);
  await checkA11y(page, "summary of a dropped CD with a problem");

  // The server's view: the DICOMDIR read as a directory, every image indexed, byte for byte.
  const batch = await batchStatus(page, batchId);
  const byPath = new Map(batch.files.map((f) => [f.relative_path, f]));
  assert.equal(byPath.size, study.length, "only the study's files were created on the server");
  for (const f of study) {
    const got = byPath.get(`${ROOT_NAME}/${f.path}`);
    assert.ok(got, `${f.path} is in the batch`);
    assert.equal(got.status, "completed", `${f.path} completed`);
    assert.equal(got.sha256, f.sha256, `${f.path} stored with its SHA-256`);
    assert.equal(got.dicom, f.path === "DICOMDIR" ? "directory" : "indexed", `${f.path} read as DICOM`);
  }
  monitor.assertClean();
}
