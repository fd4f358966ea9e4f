// Scenario 1: the first administrator (made with the command line) signs in, is sent to
// two-factor enrolment before any admin page, enrols with a code computed from the key the
// page shows, creates a bucket on the S3 test server, tests its connection, creates an
// uploader and grants the bucket.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { newPerson, checkA11y, assertLabelled, screenshot } from "../lib/browser.mjs";
import { totp, secondsLeftInStep } from "../lib/totp.mjs";
import { signIn } from "./common.mjs";

const UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";

export async function adminSetup(browser, world) {
  const admin = await newPerson(browser, world.url, "admin");
  const { page } = admin;
  world.people.push(admin);

  // Sign-in page: what everybody sees first.
  await page.goto("/");
  await page.waitForURL(/\/login$/);
  await assertLabelled(page, "sign-in page");
  await checkA11y(page, "sign-in page");
  await screenshot(page, "login");
  await signIn(page, world.admin.email, world.admin.password);

  // Straight to two-factor enrolment, saying why; every other page sends back there.
  const why = page.getByText(/Administrators must turn on two-factor authentication/);
  await page.waitForURL(/\/account\/totp$/);
  await assert.doesNotReject(why.waitFor(), "the enrolment page says why the admin was sent there");
  for (const path of ["/admin/buckets", "/uploads"]) {
    await page.goto(path);
    await page.waitForURL(/\/account\/totp$/);
  }
  await assert.doesNotReject(why.waitFor(), "the enrolment page says why the admin was sent there");
  await assertLabelled(page, "two-factor enrolment page");
  await checkA11y(page, "two-factor enrolment page");
  const shown = (await page.locator("main code").first().textContent()).trim();
  assert.match(shown, /^[A-Z2-7]{4}( [A-Z2-7]{1,4})+$/, "the key for typing by hand is shown in groups");
  // A code near the end of its 30-second step might expire on the way: wait for a fresh one.
  if (secondsLeftInStep() < 4) {
    await sleep(secondsLeftInStep() * 1000 + 200);
  }
  await page.getByLabel("6-digit code").fill(totp(shown));
  await page.getByRole("button", { name: "Turn on" }).click();
  await page.getByRole("heading", { name: "Two-factor authentication is on" }).waitFor();
  await checkA11y(page, "recovery codes page");

  // Bucket on the S3 test server.
  await page.goto("/admin/buckets/new");
  await page.getByLabel("Display name").fill(world.bucket.displayName);
  await page.getByLabel("Bucket name").fill(world.bucket.name);
  await page.getByLabel("Region").fill(world.s3.region);
  await page.getByLabel("Endpoint URL").fill(world.s3.endpoint);
  await page.getByLabel("Path-style addressing").check();
  await page.getByLabel("Access key id").fill(world.s3.accessKey);
  await page.getByLabel("Secret key").fill(world.s3.secretKey);
  await page.getByLabel("Server-side encryption").selectOption("none");
  await page.getByLabel("Size limit in bytes").fill(String(1024 * 1024 * 1024));
  for (const type of [".dcm", ".pdf"]) {
    await page.getByRole("checkbox", { name: type, exact: true }).check();
  }
  await assertLabelled(page, "bucket form");
  await checkA11y(page, "bucket form");
  await screenshot(page, "bucket-form");
  await page.getByRole("button", { name: "Create bucket" }).click();
  await page.waitForURL(new RegExp(`/admin/buckets/${UUID}$`));
  world.bucket.id = page.url().split("/").pop();
  await page.getByRole("heading", { name: world.bucket.displayName, level: 1 }).waitFor();

  // Test connection: every step answers, none fails.
  await page.getByRole("button", { name: "Test connection" }).click();
  const results = page.getByRole("list", { name: "Test connection results" });
  await results.waitFor();
  const steps = await results.getByRole("listitem").allTextContents();
  assert.ok(steps.length >= 2, `the connection test lists its steps: ${JSON.stringify(steps)}`);
  for (const step of steps) {
    assert.match(step.trim(), /^(ok|skipped) /, `connection test step did not pass: ${step.trim()}`);
  }
  assert.ok(steps.some((s) => s.trim().startsWith("ok ")), "at least one connection step is ok");
  // The security check below loads by itself (htmx) and must finish without errors.
  await page.locator("#security-title + div").getByText("Checking...").waitFor({ state: "detached" });
  await checkA11y(page, "bucket page");

  // The uploader: a one-time password they must change.
  await page.goto("/admin/users/new");
  await page.getByLabel("Email address").fill(world.uploader.email);
  await page.getByLabel("Role").selectOption("uploader");
  await page.getByLabel("One-time password").fill(world.uploader.oneTimePassword);
  await assertLabelled(page, "new user form");
  await checkA11y(page, "new user form");
  await page.getByRole("button", { name: "Create user" }).click();
  await page.getByRole("heading", { name: world.uploader.email, level: 1 }).waitFor();
  await assert.doesNotReject(
    page.getByRole("row", { name: /Must change password Yes/ }).waitFor(),
    "a user made by an admin must choose their own password",
  );

  // Grant the bucket.
  await page.goto(`/admin/buckets/${world.bucket.id}`);
  await page.getByLabel("Give this bucket to").selectOption({ label: world.uploader.email });
  await page.getByRole("button", { name: "Grant", exact: true }).click();
  const grants = page.getByRole("table", { name: "Users granted this bucket" });
  await grants.getByRole("link", { name: world.uploader.email }).waitFor();
  await checkA11y(page, "bucket page with a grant");

  admin.monitor.assertClean();
}
