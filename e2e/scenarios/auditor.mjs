// Scenario 4: the auditor (made with the command line) finds the events of scenarios 1-3 in
// /admin/audit, with the hash chain intact, filters by action, and downloads the CSV, which
// holds every one of those events; the export itself is then in the log.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { newPerson, checkA11y, assertLabelled, screenshot } from "../lib/browser.mjs";
import { signIn } from "./common.mjs";

/** RFC 4180 records (quoted fields, doubled quotes, CRLF). */
export function parseCsv(text) {
  const rows = [];
  let row = [];
  let cell = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') {
        quoted = false;
      } else {
        cell += c;
      }
    } else if (c === '"') {
      quoted = true;
    } else if (c === ",") {
      row.push(cell);
      cell = "";
    } else if (c === "\r" && text[i + 1] === "\n") {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = "";
      i++;
    } else {
      cell += c;
    }
  }
  if (cell !== "" || row.length > 0) {
    row.push(cell);
    rows.push(row);
  }
  return rows;
}

/** What scenarios 1-3 must have left in the log: action, outcome, actor, something in the details. */
function expectedEvents(world) {
  const { admin, uploader, auditor } = world;
  return [
    { action: "user.create", outcome: "success", actor: "system", details: admin.email },
    { action: "user.create", outcome: "success", actor: "system", details: auditor.email },
    { action: "login", outcome: "success", actor: admin.email },
    { action: "totp.enrol", outcome: "success", actor: admin.email },
    { action: "bucket.create", outcome: "success", actor: admin.email, details: world.bucket.name },
    { action: "bucket.test", outcome: "success", actor: admin.email },
    { action: "user.create", outcome: "success", actor: admin.email, details: uploader.email },
    { action: "bucket.grant", outcome: "success", actor: admin.email },
    { action: "login", outcome: "success", actor: uploader.email },
    { action: "password.change", outcome: "success", actor: uploader.email },
    { action: "upload.create", outcome: "success", actor: uploader.email, target: world.uploadId },
    { action: "upload.complete", outcome: "success", actor: uploader.email, target: world.uploadId },
    // Scenario 3 may fail on how it words the refusal after the server refused the file.
    ...(world.rejectionShown
      ? [{ action: "upload.reject", outcome: "denied", actor: uploader.email, details: "discharge-summary.pdf" }]
      : []),
  ];
}

function findEvent(records, e) {
  return records.find(
    (r) =>
      r.action === e.action &&
      r.outcome.toLowerCase() === e.outcome &&
      r.actor.toLowerCase().includes(e.actor.toLowerCase()) &&
      (!e.details || r.details.includes(e.details)) &&
      (!e.target || r.target_id === e.target),
  );
}

export async function auditorReview(browser, world) {
  const auditor = await newPerson(browser, world.url, "auditor");
  const { page } = auditor;
  world.people.push(auditor);

  await page.goto("/login");
  await signIn(page, world.auditor.email, world.auditor.password);
  await page.waitForURL((u) => !u.pathname.startsWith("/login"));
  await page.goto("/admin/audit");
  await page.getByRole("heading", { name: "Audit log", level: 1 }).waitFor();
  await assert.doesNotReject(
    page.locator("#chain-status").filter({ hasText: "Audit chain intact" }).waitFor(),
    "the audit page says the hash chain is intact",
  );
  await assertLabelled(page, "audit log");
  await checkA11y(page, "audit log");
  await screenshot(page, "audit-log");

  // Every event of scenarios 1-3 fits on the first page (newest first, 50 a page).
  const table = page.getByRole("table", { name: "Audit events, newest first" });
  const shown = (await table.locator("tbody tr").evaluateAll((rows) =>
    rows.map((r) => Array.from(r.cells).map((c) => c.textContent.replace(/\s+/g, " ").trim())),
  )).map(([time, actor, action, outcome, target, ip, details]) => ({
    time, actor, action, outcome, target, ip, details, target_id: target.split(" ").pop(),
  }));
  const notShown = expectedEvents(world).filter((e) => !findEvent(shown, e));
  assert.deepEqual(notShown, [], `events of scenarios 1-3 missing from the audit page (${shown.length} rows)`);

  // Filter by action: only the admin's enrolment is left.
  await page.getByLabel("Action").selectOption("totp.enrol");
  await page.getByRole("button", { name: "Apply filters" }).click();
  await page.waitForURL(/action=totp\.enrol/);
  const rows = table.locator("tbody tr");
  assert.equal(await rows.count(), 1, "one totp.enrol event");
  assert.match(await rows.first().textContent(), new RegExp(world.admin.email.replace(/\./g, "\\.")));
  await page.getByRole("link", { name: "Clear filters" }).click();
  await page.waitForURL(/\/admin\/audit$/);

  // The CSV export: every event of scenarios 1-3.
  const download = page.waitForEvent("download");
  await page.getByRole("link", { name: /^Export CSV/ }).click();
  const file = await download;
  assert.match(file.suggestedFilename(), /\.csv$/, `the export is offered as a .csv file (${file.suggestedFilename()})`);
  const [header, ...body] = parseCsv(readFileSync(await file.path(), "utf8"));
  assert.deepEqual(header, [
    "id", "occurred_at_utc", "actor_user_id", "actor", "action", "outcome", "target_type",
    "target_id", "ip", "request_id", "details", "prev_hash", "hash",
  ]);
  const records = body.map((cells) => Object.fromEntries(header.map((h, i) => [h, cells[i] ?? ""])));
  const missing = expectedEvents(world).filter((e) => !findEvent(records, e));
  assert.deepEqual(missing, [], `events missing from the CSV export (${records.length} rows)`);
  for (const r of records) {
    assert.match(r.hash, /^[0-9a-f]{64}$/, `every exported event carries its chain hash (event ${r.id})`);
  }

  // The export itself is audited.
  await page.goto("/admin/audit?action=audit.export");
  await assert.doesNotReject(
    table.getByRole("row").filter({ hasText: world.auditor.email }).first().waitFor(),
    "the CSV export is in the audit log",
  );
  auditor.monitor.assertClean();
}
