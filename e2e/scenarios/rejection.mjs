// Scenario 3: the uploader tries a Windows program renamed to .pdf. The server looks at the
// first bytes, refuses it, and the page says so in words, in a live region; the history
// lists it as rejected with the reason.
import assert from "node:assert/strict";
import { join } from "node:path";
import { checkA11y } from "../lib/browser.mjs";
import { windowsExecutable, writeFile } from "../lib/files.mjs";
import { chooseFileWithKeyboard, testFilesDir } from "./upload.mjs";

const NAME = "discharge-summary.pdf";

export async function renamedExecutable(browser, world) {
  const uploader = world.uploaderPerson;
  const { page, monitor } = uploader;
  const file = writeFile(join(testFilesDir(world), NAME), windowsExecutable());

  // The browser logs the refusal (HTTP 415 on the tus request) as a failed load; that line
  // is what this scenario provokes, so only it is let through.
  monitor.expectStatus(/\/tus\/[0-9a-f-]{36}$/, 415);
  await page.goto("/uploads/new");
  await chooseFileWithKeyboard(page, world.bucket.displayName, world.bucket.id, file.path);

  const item = page.locator(".upload-item").filter({ hasText: NAME });
  const status = item.getByRole("status");
  await status.filter({ hasText: /^Failed:/ }).waitFor({ timeout: 20_000 });
  world.rejectionShown = true;
  const text = (await status.textContent()).trim();
  console.log(`# refusal shown: ${text}`);
  assert.match(text, /refused/i, `the message says the file was refused: ${text}`);
  assert.match(text, /Windows executable/, `the message says what the file really is: ${text}`);
  assert.match(text, /PDF/, `the message says what the name claimed: ${text}`);
  assert.doesNotMatch(text, /\b[45]\d\d\b/, `the message is in words, without an HTTP status code: ${text}`);
  await checkA11y(page, "upload page with a refused file");

  await page.goto("/uploads");
  const row = page.locator("tr").filter({ has: page.getByRole("link", { name: NAME }) });
  await row.waitFor();
  assert.equal((await row.locator(".upload-state .badge").textContent()).trim(), "Rejected");
  assert.equal(await row.getByRole("link", { name: /^Download/ }).count(), 0, "a refused file cannot be downloaded");
  await row.getByRole("link", { name: NAME }).click();
  await page.getByText("Windows executable").first().waitFor();
  await checkA11y(page, "detail page of a refused upload");
  monitor.assertClean();
}
