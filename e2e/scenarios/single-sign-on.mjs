// Scenario 8: a medport of its own with single sign-on through the test OpenID Provider
// (tests/oidc), passwords kept for the break-glass admin only. A clinician whose provider
// group maps to uploader signs in with the provider's button, lands on their uploads without
// any admin page, then signs out of medport and, after the provider's confirmation, of the
// provider too, and is back on the sign-in page, signed out. Only medport's pages are
// checked (axe, CSP, console); the provider's pages are not ours.
import assert from "node:assert/strict";
import { newPerson, checkA11y, assertLabelled } from "../lib/browser.mjs";
import { freePort } from "../lib/medport.mjs";
import { oidcIssuer, registerClient, defineAccount, singleSignOnSettings } from "../lib/oidc.mjs";

export async function singleSignOn(browser, world) {
  // The provider must know the callback URL before medport starts: the port is fixed first.
  const url = `http://127.0.0.1:${await freePort()}`;
  const client = await registerClient(url);
  const clinician = await defineAccount("e2e-clinician", { groups: ["clinicians"], amr: ["pwd"] });
  const server = world.otherServer("sso", {
    ...singleSignOnSettings(url, client),
    MEDPORT_PASSWORD_SIGN_IN: "break-glass",
    MEDPORT_BREAK_GLASS_EMAILS: world.admin.email,
  });
  world.ssoServer = server;
  server.createUser(world.admin.email, "admin", world.admin.password);
  assert.equal(await server.start(), url, "medport listens on the port the provider was told");

  const person = await newPerson(browser, url, "clinician");
  const { page, monitor } = person;
  world.people.push(person);
  monitor.notOurs(oidcIssuer());
  const issuerPage = (path) => (u) => u.origin === oidcIssuer() && u.pathname.startsWith(path);
  // The provider's answer goes through a page of ours that posts it on by itself.
  const callbacks = [];
  page.on("response", (res) => {
    if (res.url().split("?")[0] === `${url}/auth/oidc/callback`) {
      callbacks.push(`${res.request().method()} ${res.status()} ${res.headers().location ?? ""}`.trim());
    }
  });

  // The sign-in page offers the provider first; passwords are for emergencies only.
  await page.goto("/login");
  const button = page.locator("form[data-single-sign-on]").getByRole("button", { name: "Sign in with Hospital account" });
  await assert.doesNotReject(button.waitFor(), "the sign-in page has the provider's button");
  await assert.doesNotReject(
    page.getByText("Password sign-in below is for emergency (break-glass) accounts only.").waitFor(),
    "the sign-in page says passwords are for break-glass accounts only",
  );
  await assertLabelled(page, "sign-in page with single sign-on");
  await checkA11y(page, "sign-in page with single sign-on");

  // At the provider: its own sign-in form, then straight back to medport.
  await button.click();
  await page.waitForURL(issuerPage("/interaction/"));
  await page.locator("#login").fill(clinician.id);
  await page.locator("#submit").click();
  await page.waitForURL(`${url}/uploads`);
  assert.deepEqual(
    callbacks,
    ["GET 200", "POST 303 /"],
    "the callback page hands the answer on to a POST of medport's own, which signs in and goes home",
  );

  // Signed in as an uploader: uploads, no admin pages.
  await page.getByRole("heading", { name: "Uploads", level: 1 }).waitFor();
  assert.equal((await page.locator(".site-user-email").textContent()).trim(), `Signed in as ${clinician.email}`);
  await assert.doesNotReject(
    page.getByRole("link", { name: "Upload files" }).first().waitFor(),
    "an uploader is offered the upload page",
  );
  const nav = page.getByRole("navigation", { name: "Main" });
  assert.deepEqual(
    (await nav.getByRole("link").allTextContents()).map((t) => t.trim()),
    // Upload requests are an uploader's own pages, not admin ones.
    ["Uploads", "Studies", "Requests", "Account"],
    "an uploader's menu has no admin or audit pages",
  );
  await checkA11y(page, "uploads page after single sign-on");
  monitor.expectStatus(/\/admin\/users$/, 403);
  const refused = await page.goto("/admin/users");
  assert.equal(refused.status(), 403, "the admin pages refuse an uploader");
  await page.goto("/uploads/new");
  await page.getByRole("heading", { name: "Upload files", level: 1 }).waitFor();

  // Signing out of medport ends the provider's session too, after its confirmation.
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(issuerPage("/session/end"));
  await page.locator("#logout-yes").click();
  await page.waitForURL(`${url}/login?signed_out=1`);
  await assert.doesNotReject(
    page.getByRole("status").filter({ hasText: "You have been signed out." }).waitFor(),
    "the sign-in page says the user was signed out",
  );
  await checkA11y(page, "sign-in page after signing out");
  await page.goto("/");
  await page.waitForURL((u) => u.origin === url && u.pathname === "/login");
  await assert.doesNotReject(button.waitFor(), "after signing out, medport asks to sign in again");
  assert.equal(await page.locator(".site-user-email").count(), 0, "nobody is signed in any more");
  // The provider's session is over too: it asks who is signing in instead of answering.
  await button.click();
  await assert.doesNotReject(
    page.waitForURL(issuerPage("/interaction/")),
    "the provider asks for the account again rather than sending the user straight back",
  );

  monitor.assertClean();
}
