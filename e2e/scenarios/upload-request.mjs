// Scenario 9: an upload request. The uploader creates one through the form (instructions,
// a passphrase, name and e-mail required) and copies its link, shown once. Someone with no
// account (a browser context of their own, no cookies, a 375 px wide phone) opens the link,
// gives a name with markup in it, an e-mail address and the passphrase, sends a small folder
// of the DICOM fixtures (with a .DS_Store the page skips) through the same upload UI as
// signed-in users, finishes and gets a receipt: each file's SHA-256 as the fixtures'
// manifest gives it and the audit hash, on the page and in the text file. The uploader's
// request page then lists the sender (the name as text, not markup) and the files. Once the
// uploader revokes the link, opening it says it is not valid.
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { assertLabelled, checkA11y, newPerson, tabTo } from "../lib/browser.mjs";
import { batchSummary, dicomFixtures } from "./folder-upload.mjs";
import { testFilesDir } from "./upload.mjs";

const FOLDER = "referral";
// One instance of each series of the `many` set, with and without .dcm, in sub-folders and
// at the top: enough to show a folder arrives whole, few enough to keep this short.
const PICKED = ["series1/IM0001", "series2/IM0001.dcm", "OT0001.dcm", "OT0002"];
const JUNK = ".DS_Store";
const SENDER = {
  // Markup in a name must come back as text on every page that shows it.
  name: "<b>Ada</b> Lovelace",
  email: "ada@practice.example",
};
const REQUEST = {
  title: "Referral scans for Dr Lee",
  instructions: "Send the whole CD, including the DICOMDIR file.\nOne folder per patient.",
  passphrase: "blue heron at noon",
};
const PHONE = { width: 375, height: 812 };

/** A folder of a few fixture files and one junk file; the fixtures' manifest entries. */
function senderFolder(world) {
  const { folder: many, manifest } = dicomFixtures().many;
  const dir = join(testFilesDir(world), FOLDER);
  const files = [];
  for (const path of PICKED) {
    const inst = manifest.instances.find((i) => i.relative_path === path);
    assert.ok(inst, `the fixtures hold ${path}`);
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    copyFileSync(join(many, path), join(dir, path));
    files.push({ path: `${FOLDER}/${path}`, name: path.split("/").pop(), size: inst.size, sha256: inst.sha256 });
  }
  copyFileSync(join(many, JUNK), join(dir, JUNK));
  return { dir, files };
}

/** The sender's pages must fit the phone without scrolling sideways. */
async function assertFitsPhone(page, what) {
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= PHONE.width, `${what} (${page.url()}) is ${width}px wide on a ${PHONE.width}px screen`);
}

/** Every check of a sender's page: labels, axe (which also checks 375 px), and the width. */
async function checkSenderPage(page, what) {
  await assertLabelled(page, what);
  await checkA11y(page, what);
  await assertFitsPhone(page, what);
}

/** axe on a signed-in page as a phone shows it too (tables that scroll sideways there). */
async function checkA11yOnPhone(page, what) {
  const before = page.viewportSize();
  await page.setViewportSize(PHONE);
  try {
    await checkA11y(page, `${what} on a phone`);
  } finally {
    await page.setViewportSize(before);
  }
}

export async function uploadRequest(browser, world) {
  const uploader = world.uploaderPerson;
  const { page } = uploader;
  const { dir, files } = senderFolder(world);
  const hashes = files.map((f) => f.sha256).sort();

  // The uploader's request, through the form.
  await page.goto("/requests/new");
  await assertLabelled(page, "new upload request form");
  await checkA11y(page, "new upload request form");
  await page.getByLabel("Title").fill(REQUEST.title);
  await page.getByLabel("Instructions for the sender").fill(REQUEST.instructions);
  await page.getByLabel("Bucket").selectOption(world.bucket.id);
  await page.getByLabel("Most files").fill("20");
  await page.getByLabel("Passphrase").fill(REQUEST.passphrase);
  const required = page.getByRole("group", { name: "The sender must give" });
  for (const box of await required.getByRole("checkbox").all()) {
    const value = await box.getAttribute("value");
    await box.setChecked(value === "name" || value === "email");
  }
  await page.getByRole("button", { name: "Create request" }).click();
  await page.getByRole("heading", { name: "Upload request created" }).waitFor();
  await assertLabelled(page, "upload request created");
  await checkA11y(page, "upload request created");

  // The link, shown once, and its copy button (the clipboard is the browser's own).
  const link = await page.locator("#request-link").inputValue();
  assert.match(link, new RegExp(`^${world.url.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/r/[A-Za-z0-9_-]{43}$`), `the link: ${link}`);
  await page.context().grantPermissions(["clipboard-read", "clipboard-write"], { origin: world.url });
  await page.getByRole("button", { name: "Copy link" }).click();
  await page.getByRole("status").filter({ hasText: "Copied." }).waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), link, "the copy button copies the link");
  await page.getByRole("link", { name: "I have copied the link" }).click();
  await page.waitForURL(/\/requests\/[^/]+$/);
  const requestPath = new URL(page.url()).pathname;
  await page.getByRole("heading", { name: REQUEST.title, level: 1 }).waitFor();

  // The sender: no account, no cookies, a phone.
  const sender = await newPerson(browser, world.url, "sender");
  world.people.push(sender);
  const sp = sender.page;
  await sp.setViewportSize(PHONE);
  await sp.goto(link);
  await sp.getByRole("heading", { name: REQUEST.title, level: 1 }).waitFor();
  assert.equal(
    // A form sends a textarea's line breaks as CRLF.
    (await sp.locator("#instructions-title + p").textContent()).trim().replace(/\r\n/g, "\n"),
    REQUEST.instructions,
    "the sender reads the instructions as written",
  );
  await checkSenderPage(sp, "upload request link page");
  await sp.getByLabel("Your name (required)").fill(SENDER.name);
  await sp.getByLabel("Your e-mail address (required)").fill(SENDER.email);
  await sp.getByLabel("Passphrase (required)").fill(REQUEST.passphrase);
  await sp.getByRole("button", { name: "Continue to upload" }).click();
  await sp.waitForURL(/\/send$/);

  // The folder, through the same upload UI as signed-in users; the bucket is not the
  // sender's to choose.
  await sp.locator("[data-dropzone]").waitFor({ state: "visible" });
  assert.equal(await sp.locator("#bucket").isVisible(), false, "the sender is not shown a bucket");
  await checkSenderPage(sp, "sender's upload page");
  await sp.getByLabel("Folder or CD").setInputFiles(dir);
  const summary = sp.locator('[data-batch-part="summary"]');
  await summary.waitFor({ state: "visible", timeout: 60_000 });
  const shown = await batchSummary(sp);
  assert.equal(shown.status, `Done. ${files.length} of ${files.length} files stored, 1 skipped.`);
  assert.equal(shown.stored, `${files.length} of ${files.length}`);
  assert.equal(shown.problems, "0");
  assert.deepEqual(shown.problemList, []);
  assert.deepEqual(shown.skippedList, [`${FOLDER}/${JUNK}`]);
  assert.equal(await sp.getByRole("link", { name: "Upload history" }).count(), 0, "a sender has no upload history");
  await checkSenderPage(sp, "sender's folder upload summary");

  // The receipt: every file with its SHA-256, and the audit hash.
  await sp.getByRole("button", { name: "Finish and get my receipt" }).click();
  await sp.waitForURL(/\/send\/receipt$/);
  await sp.getByRole("heading", { name: /^Receipt /, level: 1 }).waitFor();
  await checkSenderPage(sp, "receipt");
  const number = (await sp.getByRole("heading", { level: 1 }).textContent()).trim().replace(/^Receipt /, "");
  const onReceipt = (await sp.locator("code[data-sha256]").allTextContents()).map((s) => s.trim()).sort();
  assert.deepEqual(onReceipt, hashes, "the receipt lists each file with the SHA-256 the fixtures give");
  const auditHash = (await sp.locator("code[data-receipt-hash]").textContent()).trim();
  assert.match(auditHash, /^[0-9a-f]{64}$/, `the receipt shows the audit hash: ${auditHash}`);
  const sentBy = sp.locator("dt", { hasText: "Sent by" }).locator("xpath=following-sibling::dd[1]");
  assert.equal((await sentBy.textContent()).trim(), SENDER.name, "the receipt shows the name as typed, as text");
  assert.equal(await sp.locator("main b").count(), 0, "no markup from the sender's name reaches the page");
  // On a phone the table scrolls sideways: it takes the keyboard's focus for that.
  await sp.locator("body").focus();
  await tabTo(sp, (s) => s.tag === "div", "the table of files received");

  // The text file says the same.
  const download = sp.waitForEvent("download");
  await sp.getByRole("link", { name: "Save as a text file" }).click();
  const text = readFileSync(await (await download).path(), "utf8");
  assert.match(text, new RegExp(`^Receipt ${number}\n`), "the text file has the receipt number");
  assert.ok(text.includes(`Sent by: ${SENDER.name}\n`), `the text file names the sender:\n${text}`);
  const inText = [...text.matchAll(/^ {2}sha256: +([0-9a-f]{64})$/gm)].map((m) => m[1]).sort();
  assert.deepEqual(inText, hashes, `the text file lists the same SHA-256s:\n${text}`);
  assert.ok(text.includes(`Audit record (SHA-256 chain hash): ${auditHash}\n`), `the text file has the audit hash:\n${text}`);

  // Finished: the upload page is closed to the sender, who is shown the receipt instead.
  await sp.goto("/send");
  await sp.waitForURL(/\/send\/receipt$/);

  // The uploader sees the sender and the files.
  await page.goto(requestPath);
  const senders = page.getByRole("table", { name: "Who sent files through this request" });
  const row = senders.getByRole("row").filter({ hasText: number });
  await row.waitFor();
  const who = row.getByRole("cell").first();
  const whoText = await who.textContent();
  assert.ok(whoText.includes(SENDER.name), `the sender's name, as text: ${whoText}`);
  assert.ok(whoText.includes(SENDER.email), `the sender's e-mail address: ${whoText}`);
  assert.equal(await who.locator("b").count(), 0, "the sender's name is not markup on the request page");
  assert.ok((await row.textContent()).includes(auditHash), "the request page shows the receipt's audit hash");
  const filesTable = page.getByRole("table", { name: "Files sent through this request, oldest first" });
  const fileRows = filesTable.locator("tbody tr");
  assert.equal(await fileRows.count(), files.length, "the request page lists every file sent");
  for (const f of files) {
    const fileRow = fileRows.filter({ hasText: f.sha256 });
    assert.equal(await fileRow.count(), 1, `${f.path} is listed with its SHA-256`);
    assert.ok((await fileRow.locator("th").textContent()).includes(f.name), `${f.path} is listed by its name`);
  }
  await checkA11y(page, "upload request page with a sender and files");
  await checkA11yOnPhone(page, "upload request page with a sender and files");

  // Revoked: the link stops working, with the same page as any link that is not valid.
  await page.getByRole("button", { name: "Revoke link" }).click();
  await page.getByText("The link is revoked").waitFor();
  await checkA11y(page, "revoked upload request");
  sender.monitor.expectStatus(/\/r\/[A-Za-z0-9_-]{43}$/, 404);
  const answer = await sp.goto(link);
  assert.equal(answer.status(), 404, "a revoked link answers 404");
  await sp.getByRole("heading", { name: "This link is not valid", level: 1 }).waitFor();
  await checkSenderPage(sp, "revoked link");

  sender.monitor.assertClean();
  uploader.monitor.assertClean();
}
