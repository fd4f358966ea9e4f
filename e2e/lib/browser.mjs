// Debian's Chromium driven by playwright-core, with the checks every scenario shares:
// no Content-Security-Policy violation, no console error, no uncaught page error, no
// rate-limited request, no serious or critical axe-core finding, visible keyboard focus.
import { readFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { artifactsDir } from "./medport.mjs";

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"];
const FAILING_IMPACTS = new Set(["serious", "critical"]);

export const CHROMIUM = process.env.MEDPORT_E2E_CHROMIUM || "/usr/bin/chromium";

export async function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
}

/**
 * Everything a page says that a person or the app's authors would call a problem. Expected
 * refusals (a test that provokes a 415 on purpose) are declared with `expectStatus`, and
 * only the browser's own "Failed to load resource" line for exactly that URL and status is
 * then let through.
 */
class Monitor {
  constructor(label) {
    this.label = label;
    this.problems = [];
    this.expected = [];
    this.foreign = [];
  }

  /**
   * Pages of another site the person passes through (the sign-in provider's): what they
   * say is not ours to judge.
   */
  notOurs(origin) {
    this.foreign.push(origin);
  }

  isForeign(url) {
    return URL.canParse(url || "") && this.foreign.includes(new URL(url).origin);
  }

  expectStatus(urlPattern, status) {
    this.expected.push({ urlPattern, status });
  }

  isExpected(text, url) {
    const m = /Failed to load resource: the server responded with a status of (\d+)/.exec(text);
    return (
      !!m &&
      this.expected.some((e) => e.status === Number(m[1]) && e.urlPattern.test(url || ""))
    );
  }

  attach(page) {
    page.on("console", (msg) => {
      if (msg.type() !== "error") {
        return;
      }
      const where = msg.location()?.url || "";
      // The source too: a provider page's favicon may fail after medport's page is back.
      if (this.isExpected(msg.text(), where) || this.isForeign(page.url()) || this.isForeign(where)) {
        return;
      }
      this.problems.push(`console error on ${page.url()}: ${msg.text()} (${where})`);
    });
    page.on("pageerror", (err) => {
      if (this.isForeign(page.url())) {
        return;
      }
      this.problems.push(`uncaught error on ${page.url()}: ${err.message}`);
    });
    page.on("response", (res) => {
      if (res.status() === 429 && !this.isForeign(res.url())) {
        this.problems.push(`rate limited (429): ${res.request().method()} ${res.url()}`);
      }
    });
  }

  report(kind, detail) {
    this.problems.push(`${kind}: ${detail}`);
  }

  assertClean() {
    assert.deepEqual(this.problems, [], `${this.label}: the browser reported problems`);
  }
}

/** A browser context for one person (own cookies and storage), with its monitor. */
export async function newPerson(browser, baseURL, label, { proxy } = {}) {
  const context = await browser.newContext({
    baseURL,
    // Chromium sends loopback traffic around a proxy unless told not to.
    ...(proxy ? { proxy: { server: proxy, bypass: "<-loopback>" } } : {}),
    viewport: { width: 1280, height: 860 },
    colorScheme: "light",
    reducedMotion: "reduce",
    acceptDownloads: true,
  });
  const monitor = new Monitor(label);
  // Runs in every document before the page's own scripts; the binding reaches the test
  // through the DevTools protocol, so the page's CSP does not apply to it.
  await context.exposeBinding("__medportReportCsp", (_source, v) => {
    if (monitor.isForeign(v.documentURI)) {
      return;
    }
    monitor.report(
      "CSP violation",
      `${v.directive} blocked ${v.blockedURI || "(inline)"} on ${v.documentURI}` +
        (v.sample ? ` sample=${JSON.stringify(v.sample)}` : "") +
        (v.sourceFile ? ` at ${v.sourceFile}:${v.lineNumber}` : ""),
    );
  });
  await context.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      window.__medportReportCsp({
        directive: e.violatedDirective,
        blockedURI: e.blockedURI,
        documentURI: e.documentURI,
        sample: e.sample,
        sourceFile: e.sourceFile,
        lineNumber: e.lineNumber,
      });
    });
  });
  const page = await context.newPage();
  monitor.attach(page);
  page.setDefaultTimeout(15_000);
  return { context, page, monitor, label };
}

async function runAxe(page, options) {
  const loaded = await page.evaluate(() => typeof window.axe === "object");
  if (!loaded) {
    await page.evaluate(AXE_SOURCE);
  }
  return page.evaluate((opts) => window.axe.run(document, opts), options);
}

function describeViolations(violations) {
  return violations
    .map(
      (v) =>
        `[${v.impact}] ${v.id}: ${v.help} (${v.helpUrl})\n` +
        v.nodes
          .slice(0, 5)
          .map((n) => `    ${n.target.join(" ")}: ${n.html.slice(0, 200)}\n      ${n.failureSummary?.replace(/\n/g, " ")}`)
          .join("\n"),
    )
    .join("\n");
}

/**
 * Switches the emulated colour scheme and waits until the page's styles follow (the
 * emulation call returns before the next style recalculation, and half-switched colours
 * would make the contrast check read a mix of both schemes).
 */
async function setColorScheme(page, scheme) {
  await page.emulateMedia({ colorScheme: scheme });
  await page.waitForFunction((s) => matchMedia(`(prefers-color-scheme: ${s})`).matches, scheme, { polling: 20 });
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  // The stylesheet's reduced-motion rule shortens every transition to 0.01 ms rather than
  // removing it, so the colours still pass through a transition: wait until none runs.
  await page.waitForFunction(
    () => document.getAnimations().every((a) => a.playState !== "running" && a.playState !== "pending"),
    null,
    { polling: "raf" },
  );
}

/**
 * axe-core on the page as it is now (WCAG 2.x A and AA), in the light scheme and again for
 * colour contrast in the dark scheme the stylesheet also offers. Fails on serious or
 * critical findings.
 */
export async function checkA11y(page, what) {
  await setColorScheme(page, "light");
  const light = await runAxe(page, { runOnly: { type: "tag", values: AXE_TAGS }, resultTypes: ["violations"] });
  await setColorScheme(page, "dark");
  let dark;
  try {
    dark = await runAxe(page, { runOnly: { type: "rule", values: ["color-contrast"] }, resultTypes: ["violations"] });
  } finally {
    await setColorScheme(page, "light");
  }
  const bad = [
    ...light.violations.filter((v) => FAILING_IMPACTS.has(v.impact)),
    ...dark.violations.filter((v) => FAILING_IMPACTS.has(v.impact)).map((v) => ({ ...v, id: `${v.id} (dark scheme)` })),
  ];
  assert.equal(bad.length, 0, `accessibility (axe-core) on ${what} (${page.url()}):\n${describeViolations(bad)}`);
  await checkNarrowScreen(page, what);
}

/**
 * The page fits a 375 px wide phone: nothing makes the page itself scroll sideways (wide
 * tables scroll inside their own wrapper). Checked with every accessibility check, then the
 * viewport goes back to what it was.
 */
export async function checkNarrowScreen(page, what) {
  const before = page.viewportSize();
  await page.setViewportSize({ width: 375, height: 812 });
  try {
    const overflow = await page.evaluate(() => {
      const root = document.documentElement;
      // What sticks out of the screen, outside any box that scrolls on its own: the
      // outermost such elements, to name in the message.
      const scrolls = (el) => ["auto", "scroll", "hidden"].includes(getComputedStyle(el).overflowX);
      const inScroller = (el) => {
        for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
          if (scrolls(p)) return true;
        }
        return false;
      };
      const out = (el) => el.getBoundingClientRect().right > root.clientWidth + 1;
      const wider = Array.from(document.body.querySelectorAll("*"))
        .filter((el) => el.getClientRects().length > 0 && !el.closest("[hidden]"))
        .filter((el) => out(el) && !inScroller(el))
        .filter((el) => !el.parentElement || !out(el.parentElement))
        .slice(0, 5)
        .map((el) => `${el.tagName.toLowerCase()}${el.className ? "." + String(el.className).split(" ").join(".") : ""} "${(el.textContent || "").trim().slice(0, 40)}"`);
      if (wider.length === 0 && root.scrollWidth > root.clientWidth) {
        // Nothing sticks out but the page still scrolls sideways: something positioned
        // escapes a scrolling box. Name the positioned elements furthest to the right.
        const positioned = Array.from(document.body.querySelectorAll("*"))
          .filter((el) => ["absolute", "fixed"].includes(getComputedStyle(el).position))
          .filter((el) => el.getBoundingClientRect().right > root.clientWidth + 1)
          .slice(0, 5)
          .map((el) => `${el.tagName.toLowerCase()}.${String(el.className).split(" ").join(".")} (positioned)`);
        wider.push(...positioned);
      }
      return { extra: root.scrollWidth - root.clientWidth, wider };
    });
    assert.ok(
      overflow.extra <= 0,
      `${what} (${page.url()}) is ${overflow.extra}px wider than a 375px screen; widest: ${overflow.wider.join(", ")}`,
    );
  } finally {
    if (before) {
      await page.setViewportSize(before);
    }
  }
}

/** Every visible form control has an accessible label (a <label>, aria-label or aria-labelledby). */
export async function assertLabelled(page, what) {
  const unlabelled = await page.evaluate(() =>
    Array.from(document.querySelectorAll("input, select, textarea"))
      .filter((el) => el.type !== "hidden" && !el.closest("[hidden]") && el.getClientRects().length > 0)
      .filter((el) => {
        const byLabel = Array.from(el.labels || []).some((l) => l.textContent.trim() !== "");
        const byAria = (el.getAttribute("aria-label") || "").trim() !== "";
        const byRef = (el.getAttribute("aria-labelledby") || "")
          .split(/\s+/)
          .some((id) => id && (document.getElementById(id)?.textContent || "").trim() !== "");
        return !(byLabel || byAria || byRef);
      })
      .map((el) => el.outerHTML.slice(0, 160)),
  );
  assert.deepEqual(unlabelled, [], `${what}: form controls without a label`);
}

/** The focused element shows a focus indicator (an outline or a focus ring shadow). */
export async function focusState(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    if (!el || el === document.body) {
      return { tag: "body", visible: false, describe: "nothing focused" };
    }
    const cs = getComputedStyle(el);
    const outline = cs.outlineStyle !== "none" && parseFloat(cs.outlineWidth) >= 2;
    const ring = cs.boxShadow && cs.boxShadow !== "none";
    return {
      tag: el.tagName.toLowerCase(),
      id: el.id,
      visible: outline || !!ring,
      describe: `${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""} "${(el.textContent || el.getAttribute("aria-label") || el.name || "").trim().slice(0, 40)}" outline=${cs.outlineStyle} ${cs.outlineWidth} shadow=${cs.boxShadow}`,
    };
  });
}

/**
 * Presses Tab until `predicate(state)` holds, checking that every element reached shows
 * its focus. Returns the focus state reached.
 */
export async function tabTo(page, predicate, what, maxSteps = 40) {
  for (let i = 0; i < maxSteps; i++) {
    await page.keyboard.press("Tab");
    const state = await focusState(page);
    assert.ok(state.visible, `keyboard focus is not visible on ${state.describe} (${page.url()})`);
    if (predicate(state)) {
      return state;
    }
  }
  throw new Error(`${what}: not reached with ${maxSteps} presses of Tab on ${page.url()}`);
}

/** Full-page PNG for the documentation, when the run was asked to write them. */
export async function screenshot(page, name, { fullPage = true } = {}) {
  const dir = process.env.MEDPORT_E2E_SCREENSHOTS;
  if (!dir) {
    return;
  }
  mkdirSync(resolve(dir), { recursive: true });
  await page.screenshot({ path: join(resolve(dir), `${name}.png`), fullPage, animations: "disabled", caret: "hide" });
}

/** A picture of the page at a failure, for whoever reads the log. */
export async function failurePicture(page, name) {
  try {
    const path = join(artifactsDir("failures"), `${name}.png`);
    await page.screenshot({ path, fullPage: true });
    return path;
  } catch {
    return null;
  }
}
