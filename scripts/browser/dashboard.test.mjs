// The dashboard in headless Chromium, against a running server with scripts/e2e/seed.sql loaded: enter the token,
// see the seeded data, move a deal's stage, log an activity, add a contact, and save a screenshot.
//
//   DASHBOARD_URL=http://127.0.0.1:8090 API_TOKEN=... SCREENSHOT=out.png node --test dashboard.test.mjs
//
// Debian's /usr/bin/chromium is driven by playwright-core (which downloads no browser). The flags keep Chromium from
// reaching for the network, which this machine does not have.

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { after, before, test } from "node:test";
import { chromium } from "playwright-core";

const BASE = process.env.DASHBOARD_URL ?? "http://127.0.0.1:8090";
const TOKEN = process.env.API_TOKEN;
const SCREENSHOT = process.env.SCREENSHOT ?? "dashboard.png";
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

// Seeded records (scripts/e2e/seed.sql).
const CLOUD_DEAL = "20000000-0000-4000-8000-000000000001";

let browser;
let page;
const problems = [];

before(async () => {
  assert.ok(TOKEN, "API_TOKEN must be set");
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-default-apps",
    ],
  });
  page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  // A Content-Security-Policy violation or a script error shows up here: the page must produce none.
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(message.text());
  });
  page.on("pageerror", (error) => problems.push(String(error)));
});

after(async () => {
  await browser?.close();
});

test("the page asks for the token and keeps the dashboard hidden until then", async () => {
  await page.goto(`${BASE}/`);
  assert.equal(await page.title(), "crmsync dashboard");
  assert.equal(await page.locator("#token-form").isVisible(), true);
  assert.equal(await page.locator("#app").isVisible(), false);
});

test("a wrong token is refused with a message", async () => {
  await page.fill("#token-input", "not-the-token-0123456789");
  await page.click("#token-form button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#status").textContent.includes("refused"));
  assert.equal(await page.locator("#token-form").isVisible(), true);
  assert.equal(await page.evaluate(() => sessionStorage.getItem("crmsync.token")), null);
});

test("with the token, the seeded pipeline, companies, activities and sync health show", async () => {
  await page.fill("#token-input", TOKEN);
  await page.click("#token-form button[type=submit]");
  await page.waitForSelector("#pipeline-chart rect.bar");
  await page.waitForFunction(() => document.querySelector("#status").textContent === "Up to date.");

  const bars = await page.$$eval("#pipeline-chart rect.bar", (rects) =>
    rects.map((rect) => [rect.dataset.stage, Number(rect.dataset.count)]));
  assert.deepEqual(bars, [
    ["new_match", 1], ["initial_outreach", 1], ["contact_made", 1], ["qualified", 1], ["proposal_sent", 1],
    ["negotiation", 1],
  ]);
  const months = await page.$$eval("#win-rate-chart rect.bar", (rects) =>
    rects.map((rect) => [rect.dataset.month.slice(0, 7), Number(rect.dataset.pct)]));
  assert.deepEqual(months, [["2026-09", 100], ["2026-10", 50]]);

  const companies = await page.$$eval("#top-companies tr td:first-child", (cells) => cells.map((c) => c.textContent));
  assert.deepEqual(companies, ["Beacon Cyber LLC", "Atlas Federal Services", "Cobalt Logistics"]);
  const activities = await page.locator("#recent-activities").textContent();
  assert.match(activities, /Sent capability statement/);
  assert.match(activities, /Intro call with capture team/);
  assert.equal(await page.locator("[data-testid=sync-pending] strong").textContent(), "1");
  assert.equal(await page.locator("[data-testid=sync-failed] strong").textContent(), "1");
  assert.match(await page.locator("[data-testid=sync-last-run]").textContent(), /succeeded/);

  assert.equal(await page.locator("#deals tr[data-deal-id]").count(), 9);
  assert.equal(await page.evaluate(() => sessionStorage.getItem("crmsync.token")) !== null, true);
});

test("the stage filter narrows the deals table", async () => {
  await page.selectOption("#deal-stage-filter", "closed_won");
  await page.waitForFunction(() => document.querySelectorAll("#deals tr[data-deal-id]").length === 2);
  const stages = await page.$$eval("#deals [data-testid=deal-stage]", (cells) => cells.map((c) => c.textContent));
  assert.deepEqual(stages, ["closed won", "closed won"]);
  await page.selectOption("#deal-stage-filter", "");
  await page.waitForFunction(() => document.querySelectorAll("#deals tr[data-deal-id]").length === 9);
});

test("moving a deal's stage updates the table, the chart and the recent activities", async () => {
  const row = page.locator(`#deals tr[data-deal-id="${CLOUD_DEAL}"]`);
  assert.equal(await row.locator("[data-testid=deal-stage]").textContent(), "new match");
  await row.locator("[data-testid=move-stage]").selectOption("qualified");
  await row.locator("[data-testid=move-button]").click();
  await page.waitForFunction(() => document.querySelector("#status").textContent.startsWith("Moved Cloud migration"));
  await page.waitForFunction(
    (id) => document.querySelector(`#deals tr[data-deal-id="${id}"] [data-testid=deal-stage]`)?.textContent
      === "qualified",
    CLOUD_DEAL,
  );
  const qualified = await page.getAttribute("#pipeline-chart rect.bar[data-stage=qualified]", "data-count");
  assert.equal(qualified, "2");
  assert.equal(await page.locator("#pipeline-chart rect.bar[data-stage=new_match]").count(), 0);
  const first = await page.locator("#recent-activities tr").first().textContent();
  assert.match(first, /stage_change/);
  assert.match(first, /Stage changed from new_match to qualified/);

  const deal = await (await fetch(`${BASE}/api/deals/${CLOUD_DEAL}`, {
    headers: { Authorization: `Bearer ${TOKEN}` },
  })).json();
  assert.equal(deal.stage, "qualified");
  assert.equal(deal.closed_at, null);
});

test("logging an activity on a deal shows it first in the recent activities", async () => {
  const form = page.locator("#activity-form");
  await form.locator("select[name=activity_type]").selectOption("meeting");
  await form.locator("input[name=subject]").fill("Capability briefing with the program office");
  await form.locator("textarea[name=body]").fill("Agreed next steps.");
  await form.locator("select[name=deal_id]").selectOption(CLOUD_DEAL);
  await form.locator("button[type=submit]").click();
  await page.waitForFunction(() => document.querySelector("#status").textContent.startsWith("Logged meeting"));
  await page.waitForFunction(() =>
    document.querySelector("#recent-activities tr")?.textContent.includes("Capability briefing"));
  const first = await page.locator("#recent-activities tr").first().textContent();
  assert.match(first, /meeting/);
  assert.match(first, /Atlas Federal Services/, "the deal's company");
  assert.equal(await form.locator("input[name=subject]").inputValue(), "", "the form was reset");
});

test("adding a contact confirms it, and a duplicate email is refused with the API's message", async () => {
  const form = page.locator("#contact-form");
  await form.locator("input[name=full_name]").fill("Priya Natarajan");
  await form.locator("input[name=email]").fill("priya@cobalt.example");
  await form.locator("select[name=company_id]").selectOption({ label: "Cobalt Logistics" });
  await form.locator("button[type=submit]").click();
  await page.waitForFunction(() => document.querySelector("#status").textContent.startsWith("Added Priya"));

  await form.locator("input[name=full_name]").fill("Dana Again");
  await form.locator("input[name=email]").fill("DANA@atlasfed.example");
  await form.locator("button[type=submit]").click();
  await page.waitForFunction(() => document.querySelector("#status").textContent.includes("already exists"));
  assert.equal(await page.getAttribute("#status", "class"), "status error");
});

test("the token survives a reload of the tab, and a screenshot is saved", async () => {
  await page.reload();
  await page.waitForSelector("#pipeline-chart rect.bar");
  await page.waitForFunction(() => document.querySelector("#status").textContent === "Up to date.");
  assert.equal(await page.locator("#token-form").isVisible(), false);
  mkdirSync(dirname(SCREENSHOT), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
});

test("the page logged no errors (script errors or Content-Security-Policy violations)", () => {
  // Expected: the wrong token's 401 and the duplicate contact's 409, which the browser logs as failed loads.
  const unexpected = problems.filter((text) => !/status of (401|409)/.test(text));
  assert.deepEqual(unexpected, []);
});
