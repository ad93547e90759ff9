// The dashboard in headless Chromium, against a running server with scripts/e2e/seed.sql loaded: enter the token,
// see the seeded data (with a failed deal and two sync conflicts), move a deal's stage, log activities on a deal and
// on a contact, add a contact, and save a screenshot and check that it shows the page.
//
//   DASHBOARD_URL=http://127.0.0.1:8090 API_TOKEN=... SCREENSHOT=out.png node --test dashboard.test.mjs
//
// Debian's /usr/bin/chromium is driven by playwright-core (which downloads no browser). The flags keep Chromium from
// reaching for the network, which this machine does not have.

import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import { after, before, test } from "node:test";
import { chromium } from "playwright-core";

const BASE = process.env.DASHBOARD_URL ?? "http://127.0.0.1:8090";
const TOKEN = process.env.API_TOKEN;
const SCREENSHOT = process.env.SCREENSHOT ?? "dashboard.png";
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

// Seeded records (scripts/e2e/seed.sql).
const CLOUD_DEAL = "20000000-0000-4000-8000-000000000001";
const BEACON = "10000000-0000-4000-8000-000000000002";
const MARCUS = "30000000-0000-4000-8000-000000000002";
const FAILED_DEAL = "20000000-0000-4000-8000-000000000005";
const SOC_DEAL = "20000000-0000-4000-8000-000000000004";
const VIEWPORT = { width: 1400, height: 1000 };

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
  page = await browser.newPage({ viewport: VIEWPORT });
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
  assert.equal(await page.locator("[data-testid=sync-dead] strong").textContent(), "1");

  assert.equal(await page.locator("#deals tr[data-deal-id]").count(), 9);
  assert.equal(await page.evaluate(() => sessionStorage.getItem("crmsync.token")) !== null, true);
});

test("a call logged in HubSpot shows where it was logged and its owner, and deals show their owner by name", async () => {
  const row = page.locator("#recent-activities tr", { hasText: "Debrief call with the contracting officer" });
  assert.equal(await row.count(), 1);
  assert.equal(await row.locator("[data-testid=activity-logged-in]").textContent(), "HubSpot");
  assert.match(await row.textContent(), /Avery Cole/);
  const here = page.locator("#recent-activities tr", { hasText: "Intro call with capture team" });
  assert.equal(await here.locator("[data-testid=activity-logged-in]").textContent(), "here");

  const soc = page.locator(`#deals tr[data-deal-id="${SOC_DEAL}"] [data-testid=deal-owner]`);
  assert.equal(await soc.evaluate((select) => select.selectedOptions[0].textContent), "Jordan Reyes");
  const choices = await soc.evaluate((select) => [...select.options].map((option) => option.textContent));
  assert.deepEqual(choices, ["No owner", "Avery Cole", "Jordan Reyes"], "the deactivated owner is not offered");
});

test("choosing a deal's owner by name assigns it", async () => {
  const picker = page.locator(`#deals tr[data-deal-id="${CLOUD_DEAL}"] [data-testid=deal-owner]`);
  assert.equal(await picker.inputValue(), "");
  await picker.selectOption({ label: "Avery Cole" });
  await page.waitForFunction(() => document.querySelector("#status").textContent.includes("now Avery Cole's"));
  const deal = await (await fetch(`${BASE}/api/deals/${CLOUD_DEAL}`, {
    headers: { Authorization: `Bearer ${TOKEN}` },
  })).json();
  assert.equal(deal.owner_id, "41001");
  assert.equal(deal.owner_name, "Avery Cole");
  assert.equal(deal.owner_email, "avery.cole@example.com");
});

test("the sync health lists the failed deal with its error, and the conflicts show both sides", async () => {
  const failed = page.locator("[data-testid=failed-record]");
  assert.equal(await failed.count(), 1);
  assert.equal(await failed.getAttribute("data-entity-id"), FAILED_DEAL);
  assert.match(await failed.textContent(), /Fleet telematics - Cobalt Logistics/);
  assert.match(await failed.locator("[data-testid=failed-record-error]").textContent(),
    /^permanent: HubSpot refused the input/);

  // Newest first: the phone HubSpot won, then the deal name the local side kept.
  const rows = page.locator("#sync-conflicts tr[data-conflict-id]");
  assert.equal(await rows.count(), 2);
  const cells = (row) => row.locator("td").allTextContents();
  const [phone, name] = [await cells(rows.nth(0)), await cells(rows.nth(1))];
  assert.match(phone[1], /^Beacon Cyber LLC company/);
  assert.deepEqual([phone[2], phone[5], phone[6]], ["phone", "two way", "hubspot"]);
  assert.match(phone[3], /^\+1 410 555 0100changed /, "the local value and when it changed");
  assert.match(phone[4], /^\+1 410 555 0199changed /);
  assert.equal(await rows.nth(0).locator("td.won .value").textContent(), "+1 410 555 0199");
  assert.match(name[1], /^Cloud migration for VA - Atlas Federal Services deal/);
  assert.deepEqual([name[2], name[5], name[6]], ["dealname", "local", "local"]);
  assert.match(name[3], /change time unknown$/);
  assert.equal(await rows.nth(1).locator("td.lost .value").textContent(), "VA cloud move");
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
  // The table, the chart and the recent activities refresh from separate requests: wait for each one's new state
  // before reading it (on a busy machine the chart can still show the old counts when the table has changed).
  await page.waitForFunction(() =>
    document.querySelector("#pipeline-chart rect.bar[data-stage=qualified]")?.getAttribute("data-count") === "2");
  const qualified = await page.getAttribute("#pipeline-chart rect.bar[data-stage=qualified]", "data-count");
  assert.equal(qualified, "2");
  assert.equal(await page.locator("#pipeline-chart rect.bar[data-stage=new_match]").count(), 0);
  await page.waitForFunction(() =>
    document.querySelector("#recent-activities tr")?.textContent.includes("stage_change"));
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

// The values offered by a select, without its "None" and "… more" lines.
async function offered(select) {
  return select.evaluate((box) => [...box.options].filter((option) => option.value).map((option) => option.value));
}

test("logging an activity on a contact found through the company search", async () => {
  const form = page.locator("#activity-form");
  const companies = form.locator("select[name=company_id]");
  const contacts = form.locator("select[name=contact_id]");
  // Unfiltered, the contact choice offers every contact.
  await page.waitForFunction(() =>
    document.querySelector("#activity-form select[name=contact_id]").options.length === 3);
  await form.locator("input.company-search").fill("beacon");
  await page.waitForFunction(() =>
    document.querySelector("#activity-form select[name=company_id]").options.length === 2);
  assert.deepEqual(await offered(companies), [BEACON], "the search narrowed the companies to Beacon");
  await companies.selectOption(BEACON);
  await page.waitForFunction(
    (marcus) => [...document.querySelector("#activity-form select[name=contact_id]").options]
      .map((option) => option.value).join() === `,${marcus}`,
    MARCUS,
  );
  const beaconDeals = [3, 4, 8, 9].map((n) => `20000000-0000-4000-8000-00000000000${n}`);
  assert.deepEqual(await offered(form.locator("select[name=deal_id]")), beaconDeals, "only Beacon's deals, by id");
  await contacts.selectOption(MARCUS);
  await form.locator("select[name=activity_type]").selectOption("call");
  await form.locator("input[name=subject]").fill("Follow-up call with Marcus");
  await form.locator("button[type=submit]").click();
  await page.waitForFunction(() => document.querySelector("#status").textContent.startsWith("Logged call"));
  await page.waitForFunction(() =>
    document.querySelector("#recent-activities tr")?.textContent.includes("Follow-up call with Marcus"));
  const first = await page.locator("#recent-activities tr").first().textContent();
  assert.match(first, /Marcus Ruiz/, "the contact");
  assert.match(first, /Beacon Cyber LLC/, "the contact's company");

  const logged = await (await fetch(`${BASE}/api/activities?contact_id=${MARCUS}`, {
    headers: { Authorization: `Bearer ${TOKEN}` },
  })).json();
  assert.equal(logged.items[0].subject, "Follow-up call with Marcus");
  assert.equal(logged.items[0].company_id, BEACON);
  assert.equal(logged.items[0].deal_id, null);
  // The form was reset: no search, every company and contact offered again.
  assert.equal(await form.locator("input.company-search").inputValue(), "");
  await page.waitForFunction(() =>
    document.querySelector("#activity-form select[name=company_id]").options.length === 4);
  assert.equal(await contacts.inputValue(), "");
});

test("adding a contact confirms it, and a duplicate email is refused with the API's message", async () => {
  const form = page.locator("#contact-form");
  await form.locator("input[name=full_name]").fill("Priya Natarajan");
  await form.locator("input[name=email]").fill("priya@cobalt.example");
  await form.locator("input.company-search").fill("Cobalt");
  await page.waitForFunction(() =>
    document.querySelector("#contact-form select[name=company_id]").options.length === 2);
  await form.locator("select[name=company_id]").selectOption({ label: "Cobalt Logistics" });
  await form.locator("button[type=submit]").click();
  await page.waitForFunction(() => document.querySelector("#status").textContent.startsWith("Added Priya"));

  await form.locator("input[name=full_name]").fill("Dana Again");
  await form.locator("input[name=email]").fill("DANA@atlasfed.example");
  await form.locator("button[type=submit]").click();
  await page.waitForFunction(() => document.querySelector("#status").textContent.includes("already exists"));
  assert.equal(await page.getAttribute("#status", "class"), "status error");
});

test("the token survives a reload of the tab, and a screenshot of the whole page is saved and shows it", async () => {
  await page.reload();
  await page.waitForSelector("#pipeline-chart rect.bar");
  await page.waitForFunction(() => document.querySelector("#status").textContent === "Up to date.");
  assert.equal(await page.locator("#token-form").isVisible(), false);
  mkdirSync(dirname(SCREENSHOT), { recursive: true });
  // Where the first pipeline bar and the page's left margin are, in the full page's coordinates.
  const bar = await page.evaluate(() => {
    const box = document.querySelector("#pipeline-chart rect.bar").getBoundingClientRect();
    return { x: Math.round(box.left + box.width / 2 + scrollX), y: Math.round(box.top + box.height / 2 + scrollY) };
  });
  const pageHeight = await page.evaluate(() =>
    Math.max(document.documentElement.scrollHeight, document.body.scrollHeight));
  await page.screenshot({ path: SCREENSHOT, fullPage: true });

  // A PNG of the whole page: its IHDR chunk (right after the 8-byte signature) holds the width and height.
  const png = readFileSync(SCREENSHOT);
  assert.equal(png.subarray(0, 8).toString("hex"), "89504e470d0a1a0a", "a PNG signature");
  assert.equal(png.subarray(12, 16).toString("latin1"), "IHDR");
  assert.equal(png.readUInt32BE(16), VIEWPORT.width, "the viewport's width");
  const height = png.readUInt32BE(20);
  assert.ok(Math.abs(height - pageHeight) <= 2, `the full page's height: ${height}, the page ${pageHeight}`);
  assert.ok(pageHeight > VIEWPORT.height, `the page is taller than the viewport: ${pageHeight}`);
  assert.ok(png.length > 30_000, `a page with charts and tables, not a blank image: ${png.length} bytes`);

  // Its pixels, decoded by the browser in a blank page of its own (the dashboard's CSP is left alone): the first
  // pipeline bar is the accent blue (#2f6fdf) and the left margin the page's grey (#f3f5f8).
  const decoder = await browser.newPage();
  try {
    const pixels = await decoder.evaluate(async ({ data, points }) => {
      const image = new Image();
      image.src = `data:image/png;base64,${data}`;
      await image.decode();
      const canvas = document.createElement("canvas");
      canvas.width = image.width;
      canvas.height = image.height;
      const context = canvas.getContext("2d");
      context.drawImage(image, 0, 0);
      return points.map(({ x, y }) => [...context.getImageData(x, y, 1, 1).data.slice(0, 3)]);
    }, { data: png.toString("base64"), points: [bar, { x: 4, y: bar.y }] });
    const near = (actual, expected) => actual.every((value, index) => Math.abs(value - expected[index]) <= 8);
    assert.ok(near(pixels[0], [0x2f, 0x6f, 0xdf]), `the bar's pixel is the accent blue: ${pixels[0]}`);
    assert.ok(near(pixels[1], [0xf3, 0xf5, 0xf8]), `the margin's pixel is the page's grey: ${pixels[1]}`);
  } finally {
    await decoder.close();
  }
});

test("the page logged no errors (script errors or Content-Security-Policy violations)", () => {
  // Expected: the wrong token's 401 and the duplicate contact's 409, which the browser logs as failed loads.
  const unexpected = problems.filter((text) => !/status of (401|409)/.test(text));
  assert.deepEqual(unexpected, []);
});
