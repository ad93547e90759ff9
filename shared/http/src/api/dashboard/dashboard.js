// The crmsync dashboard: plain JavaScript over the REST API. Charts are SVG built with DOM calls, and every value
// from the API is set as text (never as HTML), so data cannot inject markup. The token is kept in sessionStorage:
// it lasts as long as the tab, and is sent only to this origin.

const TOKEN_KEY = "crmsync.token";
const STAGES = [
  "new_match", "initial_outreach", "contact_made", "qualified", "proposal_sent", "negotiation", "closed_won",
  "closed_lost",
];
const SVG = "http://www.w3.org/2000/svg";

const $ = (selector) => document.querySelector(selector);
const money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", maximumFractionDigits: 0 });
const label = (stage) => stage.replaceAll("_", " ");
const when = (time) => new Date(time).toLocaleString();
const dealPages = { cursors: [], next: null };
// HubSpot's active owners (GET /api/owners), the choices of each deal's owner picker.
let owners = [];
const LOGGED_IN = { local: "here", hubspot: "HubSpot" };

class ApiError extends Error {
  constructor(status, body) {
    const error = body && body.error;
    super(error ? error.message : `HTTP ${status}`);
    this.status = status;
    this.field = error ? error.field : null;
  }
}

async function api(path, options = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = { Authorization: `Bearer ${token}` };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method: options.method || "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    if (response.status === 401) signOut("The token was refused: enter a valid API token.");
    throw new ApiError(response.status, body);
  }
  return body;
}

function setStatus(message, kind = "") {
  const status = $("#status");
  status.textContent = message;
  status.className = `status ${kind}`;
}

function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  for (const child of children) element.append(child);
  return element;
}

function svg(tag, attributes = {}, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

function fillRows(tbody, rows, columns, emptyText) {
  tbody.replaceChildren();
  if (rows.length === 0) {
    tbody.append(el("tr", {}, el("td", { colspan: String(columns), class: "empty" }, emptyText)));
    return;
  }
  for (const row of rows) tbody.append(row);
}

function cell(text, className) {
  return el("td", className ? { class: className } : {}, text ?? "—");
}

// Pipeline: one horizontal bar per open stage, its length the deal count, labelled with count and value.
function renderPipeline(pipeline) {
  const box = $("#pipeline-chart");
  box.replaceChildren();
  if (pipeline.length === 0) {
    box.append(el("p", { class: "muted" }, "No open deals."));
    return;
  }
  const rowHeight = 28;
  const width = 640;
  const labelWidth = 130;
  const barSpace = width - labelWidth - 170;
  const max = Math.max(...pipeline.map((row) => row.count));
  const chart = svg("svg", { viewBox: `0 0 ${width} ${pipeline.length * rowHeight + 8}`, role: "img",
    "aria-label": "Open deals by stage" });
  pipeline.forEach((row, index) => {
    const y = index * rowHeight + 4;
    const length = Math.max(2, (row.count / max) * barSpace);
    chart.append(svg("text", { x: 0, y: y + 16 }, label(row.stage)));
    const bar = svg("rect", { x: labelWidth, y, width: length, height: rowHeight - 8, rx: 3, class: "bar",
      "data-stage": row.stage, "data-count": row.count });
    bar.append(svg("title", {}, `${label(row.stage)}: ${row.count} deals`));
    chart.append(bar);
    const value = row.total_value === null ? "no value" : money.format(Number(row.total_value));
    chart.append(svg("text", { x: labelWidth + length + 6, y: y + 16, class: "muted" }, `${row.count} · ${value}`));
  });
  box.append(chart);
}

// Win rate: one column per month (oldest on the left), its height the win rate, labelled with won/lost.
function renderWinRate(months) {
  const box = $("#win-rate-chart");
  box.replaceChildren();
  if (months.length === 0) {
    box.append(el("p", { class: "muted" }, "No closed deals yet."));
    return;
  }
  const shown = months.slice(0, 12).reverse();
  const width = 640;
  const height = 180;
  const columnWidth = width / shown.length;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height + 40}`, role: "img", "aria-label": "Win rate by month" });
  shown.forEach((month, index) => {
    const pct = month.win_rate_pct === null ? 0 : Number(month.win_rate_pct);
    const barHeight = Math.max(1, (pct / 100) * (height - 20));
    const x = index * columnWidth + columnWidth * 0.2;
    const name = new Date(month.month).toLocaleDateString("en-US", { month: "short", year: "2-digit", timeZone: "UTC" });
    const bar = svg("rect", { x, y: height - barHeight, width: columnWidth * 0.6, height: barHeight, rx: 3,
      class: "bar won", "data-month": month.month, "data-pct": pct });
    bar.append(svg("title", {}, `${name}: ${pct}% (${month.won} won, ${month.lost} lost)`));
    chart.append(bar);
    chart.append(svg("text", { x: x + columnWidth * 0.3, y: height - barHeight - 4, "text-anchor": "middle" }, `${pct}%`));
    chart.append(svg("text", { x: x + columnWidth * 0.3, y: height + 16, "text-anchor": "middle", class: "muted" }, name));
    chart.append(svg("text", { x: x + columnWidth * 0.3, y: height + 32, "text-anchor": "middle", class: "muted" },
      `${month.won}/${month.lost}`));
  });
  box.append(chart);
}

function renderSyncHealth(health) {
  const box = $("#sync-health");
  const tile = (name, value) => el("div", { class: `tile ${name}`, "data-testid": `sync-${name}` },
    el("strong", {}, String(value)), name);
  const run = health.last_run;
  const last = run
    ? `Last run ${new Date(run.started_at).toLocaleString()} (${run.trigger}): ${run.status}`
    : "No sync run yet.";
  box.replaceChildren(el("div", { class: "tiles" }, tile("pending", health.pending), tile("failed", health.failed),
    tile("dead", health.dead)), el("p", { class: "muted", "data-testid": "sync-last-run" }, last),
  failedRecords(health));
}

// The records HubSpot does not have (their sync item is dead), newest first, each with its error.
function failedRecords(health) {
  const box = el("div", { class: "failed-records", "data-testid": "failed-records" });
  if (health.failed_record_count === 0) {
    box.append(el("p", { class: "muted" }, "No record failed to sync."));
    return box;
  }
  const shown = health.failed_records.length;
  const more = health.failed_record_count > shown ? ` (the latest ${shown})` : "";
  box.append(el("h3", {}, `Failed records: ${health.failed_record_count}${more}`));
  const list = el("ul", {});
  for (const record of health.failed_records) {
    list.append(el("li", { "data-testid": "failed-record", "data-entity-id": record.entity_id,
      title: `${record.entity_type} ${record.entity_id}` },
    el("strong", {}, record.entity_name), ` ${record.entity_type} · ${when(record.failed_at)} · `,
    `${record.attempts} ${record.attempts === 1 ? "attempt" : "attempts"}`,
    el("span", { class: "error", "data-testid": "failed-record-error" }, record.error ?? "no error recorded")));
  }
  box.append(list);
  return box;
}

// A conflict's value on one side, with when it changed there; the winning side is marked.
function conflictValue(value, changedAt, won) {
  return el("td", { class: won ? "won" : "lost" },
    el("span", { class: "value" }, value ?? "(empty)"),
    el("span", { class: "muted when" }, changedAt ? `changed ${when(changedAt)}` : "change time unknown"));
}

function renderConflicts(page) {
  fillRows($("#sync-conflicts"), page.items.map((conflict) => el("tr", { "data-conflict-id": String(conflict.id),
    "data-entity-id": conflict.entity_id },
  cell(when(conflict.recorded_at)),
  el("td", { title: `${conflict.entity_type} ${conflict.entity_id} (HubSpot ${conflict.hubspot_id})` },
    conflict.entity_name ?? "(record gone)", el("span", { class: "muted" }, ` ${conflict.entity_type}`)),
  cell(conflict.property),
  conflictValue(conflict.local_value, conflict.local_changed_at, conflict.winner === "local"),
  conflictValue(conflict.hubspot_value, conflict.hubspot_changed_at, conflict.winner === "hubspot"),
  cell(label(conflict.policy)),
  el("td", { "data-testid": "conflict-winner" }, conflict.winner),
  )), 7, "No conflicts recorded.");
}

function renderStats(stats) {
  renderPipeline(stats.pipeline);
  renderWinRate(stats.win_rate);
  renderSyncHealth(stats.sync_health);
  fillRows($("#top-companies"), stats.top_companies.map((company) => el("tr", {},
    cell(company.name),
    cell(company.readiness_score, "num"),
    cell(String(company.active_deals), "num"),
    cell(company.pipeline_value === null ? null : money.format(Number(company.pipeline_value)), "num"),
  )), 4, "No open deals.");
  fillRows($("#recent-activities"), stats.recent_activities.map((activity) => el("tr", {},
    cell(new Date(activity.created_at).toLocaleString()),
    cell(activity.activity_type),
    cell(activity.subject),
    cell(activity.company_name),
    cell(activity.contact_name),
    el("td", {}, el("span", { class: `origin ${activity.logged_in}`, "data-testid": "activity-logged-in" },
      LOGGED_IN[activity.logged_in] || activity.logged_in)),
    cell(activity.owner_name),
  )), 7, "No activities yet.");
}

function dealRow(deal) {
  const select = el("select", { "aria-label": `New stage for ${deal.deal_name}`, "data-testid": "move-stage" });
  for (const stage of STAGES) {
    const option = el("option", { value: stage }, label(stage));
    if (stage === deal.stage) option.selected = true;
    select.append(option);
  }
  const button = el("button", { type: "button", "data-testid": "move-button" }, "Move");
  button.addEventListener("click", () => moveDeal(deal, select.value, button));
  return el("tr", { "data-deal-id": deal.id },
    cell(deal.deal_name),
    cell(deal.company_name),
    cell(deal.deal_value === null ? null : money.format(Number(deal.deal_value)), "num"),
    cell(deal.priority),
    el("td", {}, ownerPicker(deal)),
    el("td", {}, el("span", { class: `stage ${deal.stage}`, "data-testid": "deal-stage" }, label(deal.stage))),
    el("td", {}, el("div", { class: "move" }, select, button)),
  );
}

// A deal's owner as a choice of HubSpot's owners by name; choosing one assigns the deal (sent to HubSpot as
// hubspot_owner_id). An owner that is no longer active stays shown by name.
function ownerPicker(deal) {
  const picker = el("select", { "aria-label": `Owner of ${deal.deal_name}`, "data-testid": "deal-owner" },
    el("option", { value: "" }, "No owner"));
  for (const owner of owners) picker.append(el("option", { value: owner.id }, owner.name));
  if (deal.owner_id && !owners.some((owner) => owner.id === deal.owner_id)) {
    picker.append(el("option", { value: deal.owner_id }, deal.owner_name || `Owner ${deal.owner_id}`));
  }
  picker.value = deal.owner_id || "";
  picker.addEventListener("change", () => setOwner(deal, picker));
  return picker;
}

async function setOwner(deal, picker) {
  picker.disabled = true;
  try {
    const updated = await api(`/api/deals/${deal.id}/owner`, { method: "PUT", body: { owner_id: picker.value || null } });
    setStatus(updated.owner_name ? `${updated.deal_name} is now ${updated.owner_name}'s.` : `${updated.deal_name} has no owner now.`, "ok");
    deal.owner_id = updated.owner_id;
  } catch (error) {
    picker.value = deal.owner_id || "";
    setStatus(`Could not assign the deal: ${error.message}`, "error");
  } finally {
    picker.disabled = false;
  }
}

async function loadOwners() {
  owners = (await api("/api/owners")).items;
}

async function loadDeals(cursor) {
  const params = new URLSearchParams({ limit: "20" });
  const stage = $("#deal-stage-filter").value;
  if (stage) params.set("stage", stage);
  if (cursor) params.set("cursor", cursor);
  const page = await api(`/api/deals?${params}`);
  fillRows($("#deals"), page.items.map(dealRow), 7, "No deals match.");
  dealPages.next = page.next_cursor;
  $("#deals-next").disabled = !page.next_cursor;
}

// Fills a select with "None" and `items`, keeping its current choice when it is still offered. `more` adds a
// disabled last line saying the list was cut.
function fillSelect(box, items, text, more = false) {
  const keep = box.value;
  box.replaceChildren(el("option", { value: "" }, "None"),
    ...items.map((item) => el("option", { value: item.id }, text(item))));
  if (more) box.append(el("option", { value: "", disabled: "" }, "… more: refine the search"));
  box.value = keep && items.some((item) => item.id === keep) ? keep : "";
}

// Each form's company picker: a search box whose text narrows its select to the companies with that in their name
// (the API's q filter), so any company can be chosen, not only the first page. A choice already made stays offered
// while the search changes. `seq` drops answers that arrive after a later search's.
const companySearches = new WeakMap();

async function searchCompanies(form) {
  const seq = (companySearches.get(form) ?? 0) + 1;
  companySearches.set(form, seq);
  const select = form.querySelector(".company-select");
  const params = new URLSearchParams({ limit: "20" });
  const q = form.querySelector(".company-search").value.trim();
  if (q) params.set("q", q);
  const page = await api(`/api/companies?${params}`);
  if (companySearches.get(form) !== seq) return;
  const chosen = select.selectedOptions[0];
  const items = page.items.map((company) => ({ id: company.id, name: company.name }));
  if (select.value && !items.some((item) => item.id === select.value)) {
    items.unshift({ id: select.value, name: chosen.textContent });
  }
  fillSelect(select, items, (company) => company.name, page.next_cursor !== null);
}

// The activity form's deal and contact choices: the chosen company's (up to 100 each), or the first 100 of all.
let targetsSeq = 0;

async function loadActivityTargets() {
  const seq = ++targetsSeq;
  const form = $("#activity-form");
  const params = new URLSearchParams({ limit: "100" });
  if (form.elements.company_id.value) params.set("company_id", form.elements.company_id.value);
  const [deals, contacts] = await Promise.all([api(`/api/deals?${params}`), api(`/api/contacts?${params}`)]);
  if (seq !== targetsSeq) return;
  fillSelect(form.elements.deal_id, deals.items, (deal) => deal.deal_name, deals.next_cursor !== null);
  fillSelect(form.elements.contact_id, contacts.items,
    (contact) => (contact.email ? `${contact.full_name} (${contact.email})` : contact.full_name),
    contacts.next_cursor !== null);
}

// After a form was reset: its company list from an empty search, and the activity form's targets again.
function reloadChoices(form) {
  return Promise.all([searchCompanies(form), loadActivityTargets()]);
}

async function moveDeal(deal, stage, button) {
  if (stage === deal.stage) {
    setStatus(`${deal.deal_name} is already in ${label(stage)}.`);
    return;
  }
  button.disabled = true;
  try {
    const result = await api(`/api/deals/${deal.id}/stage`, { method: "POST", body: { stage } });
    setStatus(`Moved ${result.deal.deal_name} from ${label(result.previous_stage)} to ${label(result.deal.stage)}.`, "ok");
    await refresh();
  } catch (error) {
    setStatus(`Could not move the deal: ${error.message}`, "error");
  } finally {
    button.disabled = false;
  }
}

// Form fields to a JSON body: blank fields are left out.
function formBody(form) {
  const body = {};
  for (const [name, value] of new FormData(form).entries()) {
    if (String(value).trim() !== "") body[name] = String(value).trim();
  }
  return body;
}

async function submitContact(event) {
  event.preventDefault();
  const form = event.target;
  try {
    const contact = await api("/api/contacts", { method: "POST", body: formBody(form) });
    form.reset();
    setStatus(`Added ${contact.full_name}; it will be sent to HubSpot.`, "ok");
    await reloadChoices(form);
  } catch (error) {
    setStatus(`Could not add the contact: ${error.message}`, "error");
  }
}

async function submitActivity(event) {
  event.preventDefault();
  const form = event.target;
  try {
    const activity = await api("/api/activities", { method: "POST", body: formBody(form) });
    form.reset();
    setStatus(`Logged ${activity.activity_type} "${activity.subject}".`, "ok");
    await Promise.all([refresh(), reloadChoices(form)]);
  } catch (error) {
    setStatus(`Could not log the activity: ${error.message}`, "error");
  }
}

async function refresh() {
  await loadOwners();
  const [stats, conflicts] = await Promise.all([api("/api/dashboard/stats"), api("/api/sync/conflicts?limit=10"),
    loadDeals(dealPages.cursors.at(-1))]);
  renderStats(stats);
  renderConflicts(conflicts);
}

async function start() {
  $("#token-form").hidden = true;
  $("#signed-in").hidden = false;
  $("#app").hidden = false;
  try {
    await Promise.all([refresh(), loadActivityTargets(),
      ...[...document.querySelectorAll("form.stack")].map(searchCompanies)]);
    setStatus("Up to date.", "ok");
  } catch (error) {
    if (error.status !== 401) setStatus(`Could not load the dashboard: ${error.message}`, "error");
  }
}

function signOut(message = "") {
  sessionStorage.removeItem(TOKEN_KEY);
  $("#token-form").hidden = false;
  $("#signed-in").hidden = true;
  $("#app").hidden = true;
  setStatus(message, message ? "error" : "");
}

function init() {
  const filter = $("#deal-stage-filter");
  for (const stage of STAGES) filter.append(el("option", { value: stage }, label(stage)));
  filter.addEventListener("change", () => {
    dealPages.cursors = [];
    loadDeals().catch((error) => setStatus(error.message, "error"));
  });
  $("#deals-next").addEventListener("click", () => {
    dealPages.cursors.push(dealPages.next);
    loadDeals(dealPages.next).catch((error) => setStatus(error.message, "error"));
  });
  $("#deals-first").addEventListener("click", () => {
    dealPages.cursors = [];
    loadDeals().catch((error) => setStatus(error.message, "error"));
  });
  $("#token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("#token-input").value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    $("#token-input").value = "";
    start();
  });
  $("#sign-out").addEventListener("click", () => signOut());
  $("#refresh").addEventListener("click", () => refresh().then(() => setStatus("Up to date.", "ok"),
    (error) => setStatus(error.message, "error")));
  for (const form of document.querySelectorAll("form.stack")) {
    let timer;
    form.querySelector(".company-search").addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => searchCompanies(form).catch((error) => setStatus(error.message, "error")), 250);
    });
  }
  $("#activity-form").elements.company_id.addEventListener("change",
    () => loadActivityTargets().catch((error) => setStatus(error.message, "error")));
  $("#contact-form").addEventListener("submit", submitContact);
  $("#activity-form").addEventListener("submit", submitActivity);
  if (sessionStorage.getItem(TOKEN_KEY)) start();
}

init();
