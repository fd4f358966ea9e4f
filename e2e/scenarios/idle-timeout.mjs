// Scenario 7: with MEDPORT_SESSION_IDLE_MINUTES=1, a signed-in user who does nothing for
// over a minute is sent back to the sign-in page with a message saying why, and signing in
// again returns them to the page they asked for.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { newPerson, checkA11y } from "../lib/browser.mjs";
import { signIn } from "./common.mjs";

const IDLE_MS = 60_000;
// The session store's clock has whole-second rows; a little slack past the minute.
const SLACK_MS = 3_000;

/** Signs in at the start of the run; the idle minute then passes while the rest runs. */
export async function idleSignIn(browser, world) {
  const person = await newPerson(browser, world.idleUrl, "idle-user");
  const { page } = person;
  await page.goto("/login");
  await signIn(page, world.idleUser.email, world.idleUser.password);
  await page.waitForURL(/\/uploads$/);
  await page.getByRole("heading", { name: "Uploads", level: 1 }).waitFor();
  world.idle = { person, lastActivity: Date.now() };
}

export async function idleTimeout(browser, world) {
  const { person, lastActivity } = world.idle;
  const { page, monitor } = person;
  world.people.push(person);

  // Still signed in right now: a request within the minute is no problem (the check is
  // only made when the minute is not yet over, so it does not reset the clock past it).
  const wait = lastActivity + IDLE_MS + SLACK_MS - Date.now();
  if (wait > 0) {
    await sleep(wait);
  }
  await page.goto("/uploads/new");
  await page.waitForURL(/\/login\?/);
  const url = new URL(page.url());
  assert.equal(url.searchParams.get("next"), "/uploads/new", "the sign-in page keeps where the user was going");
  await assert.doesNotReject(
    page.getByRole("status").filter({ hasText: "Your session ended after a period of inactivity. Please sign in again." }).waitFor(),
    "the sign-in page says the session ended for inactivity",
  );
  await checkA11y(page, "sign-in page after an idle timeout");

  // Signing in again goes back to the page that was asked for.
  await signIn(page, world.idleUser.email, world.idleUser.password);
  await page.waitForURL(/\/uploads\/new$/);
  monitor.assertClean();
}
