// Browser test of the keygate console: real headless Chromium (Debian's /usr/bin/chromium)
// driven by playwright-core, against the debug keygate binary on a fresh database.
// It follows the original manual's path by link text, enables the API, creates a programmatic
// user, generates a key for it, uses the key, disables it and deactivates its user, and checks
// that the key is shown once (and that choosing a user without "Show the choices" generates
// nothing, issue 17). Then issue 10's path: a group `Invoice export` with two grants
// ticked by label, a programmatic user in it, a key for that user that reads documents and is
// refused persons and writes, the grant taken away in the console and the next call refused; and
// a User configurator who is refused, beside the form, a user in Supervisor (the grant ceiling).
// Issue 19: the landing page (today's figures, the Public API one click away), scope choices as
// read / write per resource with dormant ones marked, the usage page's per-key table and chart
// axes, the audit log's filters and CSV export, and at 1 280 and 390 px: no page overflow, no
// clipped table cell, and (at 1 280 px) no table that scrolls sideways.
// Screenshots go to target/screenshots/ and, for the pages of the docs, docs/screenshots/.
// Prints `N passed, M failed` and exits non-zero on failure. With CI=true a missing Chromium or
// keygate binary is a failure, never a skip.

import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const BIN = join(ROOT, "target/debug/keygate");
const CHROMIUM = process.env.KEYGATE_CHROMIUM || "/usr/bin/chromium";
const SHOTS = join(ROOT, "target/screenshots");
const DOC_SHOTS = join(ROOT, "docs/screenshots");
const CI = process.env.CI === "true";
const TENANT = "acme";
const ADMIN = "admin@acme.example";
const PASSWORD = "correct horse battery staple";
const ERP = "erp@acme.example";
const INVOICES = "invoices@acme.example";
const HR = "hr@acme.example";
const PUBLIC_API = "/console/configuration/system/integrations/public-api";
const OVERALL_TIMEOUT_MS = 240_000;

let passed = 0;
let failed = 0;
let server;
let restartServer;
let context;
let work;

function missing(what) {
  if (CI) {
    console.error(`FAIL: ${what} (CI=true: a missing prerequisite is a failure, never a skip)`);
    console.log("0 passed, 1 failed");
    process.exit(1);
  }
  console.warn(`SKIP: ${what}`);
  console.log("0 passed, 0 failed, 1 skipped");
  process.exit(0);
}

async function cleanup() {
  try { await context?.close(); } catch { /* already gone */ }
  if (server && server.exitCode === null) {
    server.kill("SIGTERM");
    const exited = await Promise.race([
      new Promise((r) => server.once("exit", () => r(true))),
      new Promise((r) => setTimeout(() => r(false), 5000)),
    ]);
    if (!exited) server.kill("SIGKILL");
  }
  if (work) rmSync(work, { recursive: true, force: true });
}

const watchdog = setTimeout(async () => {
  console.error(`FAIL: the browser test did not finish within ${OVERALL_TIMEOUT_MS / 1000} s`);
  await cleanup();
  console.log(`${passed} passed, ${failed + 1} failed`);
  process.exit(1);
}, OVERALL_TIMEOUT_MS);

function freePort() {
  return new Promise((resolvePort, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolvePort(port));
    });
  });
}

async function waitUntilUp(base) {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (server.exitCode !== null) throw new Error(`keygate exited with ${server.exitCode}`);
    try {
      const r = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(1000) });
      if (r.ok) return;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error("keygate did not answer /healthz within 30 s");
}

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

/// Runs one named check; after a failure the dependent checks that follow are not run.
let broken = false;
async function check(name, body) {
  if (broken) {
    failed++;
    console.log(`not run (an earlier step failed): ${name}`);
    return;
  }
  const started = Date.now();
  try {
    await body();
    passed++;
    console.log(`ok: ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    failed++;
    broken = true;
    console.log(`FAIL: ${name}\n  ${String(e?.stack || e).split("\n").slice(0, 6).join("\n  ")}`);
  }
}

async function callCapability(base, key) {
  const r = await fetch(`${base}/rest/v1/1/capability`, {
    headers: { Authorization: `Bearer ${key}` },
    signal: AbortSignal.timeout(5000),
  });
  const body = await r.json().catch(() => ({}));
  return { status: r.status, body };
}

async function api(base, key, method, path, body) {
  const r = await fetch(`${base}${path}`, {
    method,
    headers: { Authorization: `Bearer ${key}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(5000),
  });
  const answer = await r.json().catch(() => ({}));
  return { status: r.status, body: answer };
}

/// A full-page screenshot in target/screenshots/ and, for the documentation, docs/screenshots/.
async function shot(page, name, { docs = false } = {}) {
  await page.screenshot({ path: join(SHOTS, name), fullPage: true });
  if (docs) await page.screenshot({ path: join(DOC_SHOTS, name), fullPage: true });
}

async function logIn(page, base, email) {
  await page.goto(`${base}/console/login`);
  await page.getByLabel("Tenant", { exact: true }).fill(TENANT);
  await page.getByLabel("Email", { exact: true }).fill(email);
  await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.waitForURL(`${base}/console/configuration`);
}

async function main() {
  if (!existsSync(CHROMIUM)) missing(`Chromium not found at ${CHROMIUM} (apt-get install chromium)`);
  if (!existsSync(BIN)) missing(`${BIN} not found (cargo build -p keygate)`);
  let chromium;
  try {
    ({ chromium } = await import("playwright-core"));
  } catch {
    missing("playwright-core is not installed (npm ci --prefix tests/browser)");
  }
  mkdirSync(SHOTS, { recursive: true });
  mkdirSync(DOC_SHOTS, { recursive: true });
  work = mkdtempSync(join(tmpdir(), "keygate-browser-"));
  const dataDir = join(work, "data");
  const passwordFile = join(work, "admin-password");
  writeFileSync(passwordFile, PASSWORD, { mode: 0o600 });
  const init = spawnSync(BIN, ["--data-dir", dataDir, "init", "--tenant", TENANT, "--admin-email", ADMIN, "--admin-password-file", passwordFile], {
    encoding: "utf8",
    timeout: 30_000,
  });
  if (init.status !== 0) throw new Error(`keygate init failed: ${init.stderr}`);

  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const log = openSync(join(work, "server.log"), "w");
  const startServer = async () => {
    server = spawn(BIN, ["--data-dir", dataDir, "serve", "--listen", `127.0.0.1:${port}`], {
      stdio: ["ignore", log, log],
      env: { ...process.env, KEYGATE_LOG: "info,sqlx=warn" },
    });
    await waitUntilUp(base);
  };
  // Call counts are written once a minute and when the server stops: a restart writes them now
  // (the console session lives in the database and survives it).
  restartServer = async () => {
    const exited = new Promise((r) => server.once("exit", r));
    server.kill("SIGTERM");
    await exited;
    await startServer();
  };
  await startServer();

  context = await chromium.launchPersistentContext(join(work, "profile"), {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1280, height: 900 },
    timeout: 30_000,
  });
  context.setDefaultTimeout(10_000);
  context.setDefaultNavigationTimeout(15_000);
  const page = context.pages()[0] ?? (await context.newPage());
  const main = () => page.getByRole("navigation", { name: "Main" });
  let key;

  await check("the login page asks for tenant, email and password", async () => {
    await page.goto(`${base}/console/login`);
    for (const label of ["Tenant", "Email", "Password"]) {
      assert(await page.getByLabel(label, { exact: true }).isVisible(), `no field labelled ${label}`);
    }
    await shot(page, "login.png", { docs: true });
  });

  await check("the administrator logs in", async () => {
    await page.getByLabel("Tenant", { exact: true }).fill(TENANT);
    await page.getByLabel("Email", { exact: true }).fill(ADMIN);
    await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.waitForURL(`${base}/console/configuration`);
  });

  await check("Configuration → System configuration → Integrations → Public API leads to the Public API page", async () => {
    for (const text of ["Configuration", "System configuration", "Integrations", "Public API"]) {
      await page.getByRole("link", { name: text, exact: true }).click();
      await page.waitForLoadState("domcontentloaded");
    }
    assert(page.url() === `${base}${PUBLIC_API}`, `ended at ${page.url()}`);
    assert((await page.getByRole("heading", { level: 1 }).textContent()) === "Public API", "no Public API heading");
  });

  await check("the administrator enables the API", async () => {
    await page.getByRole("button", { name: "Enable the API" }).click();
    await page.getByText("The Public API is enabled: valid keys").waitFor();
    await page.getByRole("button", { name: "Disable the API" }).waitFor();
  });

  await check("a programmatic user is created on the Users page", async () => {
    await main().getByRole("link", { name: "Users", exact: true }).click();
    await page.getByLabel("Programmatic user (for an integration)").check();
    await page.getByLabel("Name", { exact: true }).fill("ERP export");
    await page.getByLabel("Email", { exact: true }).fill(ERP);
    await page.getByRole("button", { name: "Create the user" }).click();
    await page.getByText(`Created the programmatic user ${ERP}.`).waitFor();
    const row = page.getByRole("row").filter({ hasText: ERP });
    assert((await row.textContent()).includes("Programmatic"), "the new user is not marked programmatic");
    await shot(page, "users.png", { docs: true });
  });

  await check("choosing a user and pressing Generate at once generates nothing; the form then shows that user", async () => {
    // issue 17: this generated the key for the person logged in.
    await page.goto(`${base}${PUBLIC_API}`);
    const owner = page.getByLabel("For which user");
    await owner.selectOption(await owner.locator("option", { hasText: ERP }).getAttribute("value"));
    await page.getByLabel("Purpose (required)").fill("Generate pressed at once");
    await page.getByRole("button", { name: "Generate API key" }).click();
    await page.getByText(`No key generated: the list names ${ERP}, but the form was showing the choices for yourself (${ADMIN})`).waitFor();
    assert(await page.getByLabel("API key", { exact: true }).count() === 0, "a key is shown");
    await page.getByText(`The key below is for ERP export <${ERP}>`).waitFor();
    const purpose = await page.getByLabel("Purpose (required)").inputValue();
    assert(purpose === "Generate pressed at once", `the typed purpose is gone: ${purpose}`);
  });

  await check("a key generated for the programmatic user is shown once, with a copy button", async () => {
    await page.goto(`${base}${PUBLIC_API}`);
    const owner = page.getByLabel("For which user");
    const option = await owner.locator("option", { hasText: ERP }).getAttribute("value");
    await owner.selectOption(option);
    await page.getByRole("button", { name: "Show the choices for this user" }).click();
    await page.getByText(`The key below is for ERP export <${ERP}>`).waitFor();
    await page.getByLabel("Purpose (required)").fill("ERP invoice export");
    const ranges = await page.getByLabel("IP ranges the key may call from (required)").inputValue();
    assert(ranges.trim() === "127.0.0.1/32", `the ranges are not prefilled with the browser's address: ${ranges}`);
    await page.getByRole("button", { name: "Generate API key" }).click();
    key = await page.getByLabel("API key", { exact: true }).inputValue();
    assert(/^kg_[0-9A-Za-z]{38}$/.test(key), "the page shows no well-formed key");
    assert(await page.getByText("It will not be shown again").isVisible(), "no warning that the key is shown once");
    assert(await page.getByRole("button", { name: "Copy" }).isVisible(), "no copy button");
    await page.screenshot({ path: join(SHOTS, "public-api-new-key.png"), fullPage: true });
  });

  await check("the new key calls /rest/v1/1/capability as the programmatic user (200)", async () => {
    const { status, body } = await callCapability(base, key);
    assert(status === 200, `status ${status}: ${JSON.stringify(body)}`);
    assert(body.user?.email === ERP, `the call ran as ${body.user?.email}`);
  });

  await check("reloading the page after generation no longer shows the key", async () => {
    await page.reload().catch(() => { /* a refused re-post is fine too */ });
    assert(!(await page.content()).includes(key), "the reloaded answer still contains the key");
    await page.goto(`${base}${PUBLIC_API}`);
    assert(!(await page.content()).includes(key), "the Public API page still contains the key");
  });

  const keyRow = () => page.getByRole("row").filter({ hasText: "ERP invoice export" });

  await check("disabling the key in the console refuses the next call with key_disabled", async () => {
    await keyRow().getByRole("link", { name: "Disable", exact: true }).click();
    await page.getByRole("button", { name: "Disable the key" }).click();
    await page.getByText(/Key \d+ is disabled\./).waitFor();
    const { status, body } = await callCapability(base, key);
    assert(status === 401 && body.code === "key_disabled", `status ${status}, code ${body.code}`);
  });

  await check("enabling it again lets calls through", async () => {
    await keyRow().getByRole("link", { name: "Enable", exact: true }).click();
    await page.getByRole("button", { name: "Enable the key" }).click();
    await page.getByText(/Key \d+ is enabled\./).waitFor();
    const { status } = await callCapability(base, key);
    assert(status === 200, `status ${status}`);
  });

  let invoiceKey;
  const invoiceRow = () => page.getByRole("row").filter({ hasText: "invoice export to the ERP" });

  await check("a group Invoice export with documents:read:all and companies:read:all is created on the Groups page", async () => {
    await main().getByRole("link", { name: "Groups", exact: true }).click();
    const systemRow = page.getByRole("row").filter({ hasText: "Supervisor" });
    assert((await systemRow.textContent()).includes("System group"), "the Supervisor group is not marked as a system group");
    await page.getByLabel("Group name").fill("Invoice export");
    await page.getByRole("group", { name: "documents", exact: true }).getByLabel("read all", { exact: true }).check();
    await page.getByRole("group", { name: "companies", exact: true }).getByLabel("read all", { exact: true }).check();
    await page.getByRole("button", { name: "Create the group" }).click();
    await page.getByText("Created the group Invoice export.").waitFor();
    const documents = page.getByRole("group", { name: "documents", exact: true });
    assert(await documents.getByLabel("read all", { exact: true }).isChecked(), "documents: read all is not ticked on the group page");
    assert(!(await documents.getByLabel("write all", { exact: true }).isChecked()), "documents: write all is ticked");
    await shot(page, "group.png", { docs: true });
    await main().getByRole("link", { name: "Groups", exact: true }).click();
    const row = page.getByRole("row").filter({ hasText: "Invoice export" });
    const text = await row.textContent();
    assert(text.includes("documents:read:all") && text.includes("companies:read:all"), `the group's grants are listed as ${text}`);
    await shot(page, "groups.png", { docs: true });
  });

  await check("a programmatic user in Invoice export is created on the Users page", async () => {
    await main().getByRole("link", { name: "Users", exact: true }).click();
    await page.getByLabel("Programmatic user (for an integration)").check();
    await page.getByLabel("Name", { exact: true }).fill("Invoice export");
    await page.getByLabel("Email", { exact: true }).fill(INVOICES);
    await page.getByRole("group", { name: "Groups" }).getByLabel("Invoice export", { exact: false }).check();
    await page.getByRole("button", { name: "Create the user" }).click();
    await page.getByText(`Created the programmatic user ${INVOICES}.`).waitFor();
    const row = page.getByRole("row").filter({ hasText: INVOICES });
    assert((await row.textContent()).includes("Invoice export"), "the new user is not in Invoice export");
  });

  await check("the key form for that user offers only the scopes it holds, and the key is generated", async () => {
    await page.goto(`${base}${PUBLIC_API}`);
    const owner = page.getByLabel("For which user");
    await owner.selectOption(await owner.locator("option", { hasText: INVOICES }).getAttribute("value"));
    await page.getByRole("button", { name: "Show the choices for this user" }).click();
    await page.getByText(`The key below is for Invoice export <${INVOICES}>`).waitFor();
    const scopes = page.getByRole("group", { name: "Scopes (optional)" });
    for (const offered of ["documents — read", "companies — read"]) {
      assert(await scopes.getByLabel(offered, { exact: true }).count() === 1, `the scope ${offered} is not offered`);
    }
    for (const absent of ["documents — write", "companies — write"]) {
      assert(await scopes.getByLabel(absent, { exact: true }).count() === 0, `the scope ${absent} is offered, though the user does not hold it`);
    }
    assert(await page.getByRole("group", { name: "Units (optional)" }).getByLabel(/^unit 1/).count() === 1, "unit 1 is not offered");
    await page.getByLabel("Purpose (required)").fill("invoice export to the ERP");
    await shot(page, "public-api-key-choices.png", { docs: true });
    await page.getByRole("button", { name: "Generate API key" }).click();
    invoiceKey = await page.getByLabel("API key", { exact: true }).inputValue();
    assert(/^kg_[0-9A-Za-z]{38}$/.test(invoiceKey), "the page shows no well-formed key");
    await page.getByRole("link", { name: "I have copied the key" }).click();
    assert((await invoiceRow().textContent()).includes("inherit"), "the keys table does not show the key's scopes");
  });

  await check("the key reads views/documents (200) and is refused views/persons and POST documents (403)", async () => {
    let r = await api(base, invoiceKey, "GET", "/rest/v1/1/views/documents");
    assert(r.status === 200, `views/documents: ${r.status} ${JSON.stringify(r.body)}`);
    r = await api(base, invoiceKey, "GET", "/rest/v1/1/views/persons");
    assert(r.status === 403 && r.body.code === "insufficient_permission", `views/persons: ${r.status} ${r.body.code}`);
    r = await api(base, invoiceKey, "POST", "/rest/v1/1/documents", { type: "INVOICE.SALES", title: "not allowed" });
    assert(r.status === 403 && r.body.code === "insufficient_permission", `POST documents: ${r.status} ${r.body.code}`);
  });

  await check("the user page shows the user's groups and the key's effective permissions", async () => {
    await main().getByRole("link", { name: "Users", exact: true }).click();
    await page.getByRole("row").filter({ hasText: INVOICES }).getByRole("link", { name: "Invoice export", exact: true }).click();
    await page.getByRole("heading", { level: 1, name: "Invoice export" }).waitFor();
    assert(await page.getByRole("group", { name: "Groups of Invoice export" }).getByLabel("Invoice export", { exact: false }).isChecked(), "the group is not ticked");
    const key = page.getByRole("row").filter({ hasText: "invoice export to the ERP" });
    const text = await key.textContent();
    assert(text.includes("documents:read:all") && text.includes("companies:read:all"), `the key may do ${text}`);
    await shot(page, "user.png", { docs: true });
  });

  await check("taking documents:read:all away from the group refuses the next views/documents call (403)", async () => {
    await main().getByRole("link", { name: "Groups", exact: true }).click();
    await page.getByRole("link", { name: "Invoice export", exact: true }).click();
    await page.getByRole("group", { name: "documents", exact: true }).getByLabel("read all", { exact: true }).uncheck();
    await page.getByRole("button", { name: "Save the grants" }).click();
    await page.getByText("The grants of Invoice export are now: companies:read:all.").waitFor();
    const r = await api(base, invoiceKey, "GET", "/rest/v1/1/views/documents");
    assert(r.status === 403 && r.body.code === "insufficient_permission", `views/documents after the change: ${r.status} ${r.body.code}`);
    const companies = await api(base, invoiceKey, "GET", "/rest/v1/1/views/companies");
    assert(companies.status === 200, `views/companies: ${companies.status}`);
  });

  await check("a unit is created on the Units page with the next free number", async () => {
    await main().getByRole("link", { name: "Units", exact: true }).click();
    await page.getByLabel("Name", { exact: true }).fill("Branch office");
    await page.getByRole("button", { name: "Create the unit" }).click();
    await page.getByText("Created unit 2 (Branch office).").waitFor();
    await page.getByLabel("New name for unit 2").fill("Branch office Graz");
    await page.getByRole("row").filter({ hasText: "Branch office" }).getByRole("button", { name: "Rename" }).click();
    await page.getByText("Unit 2 is now called Branch office Graz.").waitFor();
    await shot(page, "units.png", { docs: true });
  });

  await check("a User configurator (and nothing else) is created with a password", async () => {
    await main().getByRole("link", { name: "Users", exact: true }).click();
    await page.getByLabel("Personal user (a person who logs in)").check();
    await page.getByLabel("Name", { exact: true }).fill("Human resources");
    await page.getByLabel("Email", { exact: true }).fill(HR);
    await page.getByRole("group", { name: "Groups" }).getByLabel("User configurator", { exact: false }).check();
    await page.getByLabel(/^Password \(optional/).fill(PASSWORD);
    await page.getByRole("button", { name: "Create the user" }).click();
    await page.getByText(`Created the user ${HR}.`).waitFor();
  });

  await check("deactivating the user says one key stops, and its key is refused with user_inactive", async () => {
    await main().getByRole("link", { name: "Users", exact: true }).click();
    await page.getByRole("row").filter({ hasText: ERP }).getByRole("link", { name: "Deactivate" }).click();
    await page.getByText("1 of their API keys stop working").waitFor();
    await page.getByRole("button", { name: "Deactivate the user" }).click();
    await page.getByText(`${ERP} is deactivated: 1 API key stopped working.`).waitFor();
    const { status, body } = await callCapability(base, key);
    assert(status === 401 && body.code === "user_inactive", `status ${status}, code ${body.code}`);
  });

  await check("the usage and audit pages show the key", async () => {
    await main().getByRole("link", { name: "Usage", exact: true }).click();
    // Issue 19: a key is listed in the per-key table at once; its chart comes with its first
    // counts (written behind every 5 s), never as an empty chart.
    assert(await page.locator("table.usage-table").getByRole("row").filter({ hasText: "ERP invoice export" }).count() === 1, "the key is not in the usage table");
    await main().getByRole("link", { name: "Audit log", exact: true }).click();
    const text = await page.locator("main").textContent();
    for (const action of ["key.issued", "key.disabled", "user.deactivated", "tenant.api_enabled"]) {
      assert(text.includes(action), `the audit log lacks ${action}`);
    }
  });

  // Issue 19: the landing page, scope choices, usage, the audit log's filters and CSV, and the
  // layout at 1 280 and 390 px.
  await check("the landing page shows the API state, keys by state, calls and refusals today, with the Public API one click away", async () => {
    await restartServer();
    await page.goto(`${base}/console/configuration`);
    const calls = Number(await page.locator(".tile", { hasText: "Calls today" }).locator("strong").textContent());
    assert(calls >= 5, `calls today: ${calls}`);
    const tile = (label) => page.locator(".tile", { hasText: label });
    assert((await tile("Public API").locator("strong").textContent()) === "on", "the API is not shown as on");
    assert((await tile("Keys").textContent()).includes("user inactive"), `keys by state: ${await tile("Keys").textContent()}`);
    assert(Number(await tile("Refused today").locator("strong").textContent()) >= 2, "refusals today are not counted");
    const failing = await page.getByRole("region", { name: "Keys failing today" }).textContent();
    assert(failing.includes("ERP invoice export") && failing.includes("key_disabled"), `keys failing: ${failing}`);
    assert(await page.getByRole("heading", { name: /Keys expiring within 14 days/ }).isVisible(), "no expiring keys section");
    assert(await page.getByRole("heading", { name: /Keys unused for 30 days/ }).isVisible(), "no unused keys section");
    assert((await main().locator("a[aria-current]").textContent()) === "Configuration", "the current section is not marked");
    await shot(page, "home.png", { docs: true });
    await page.getByRole("navigation", { name: "The manual's path to the Public API" }).getByRole("link", { name: "Public API", exact: true }).click();
    assert(page.url() === `${base}${PUBLIC_API}`, `one click led to ${page.url()}`);
  });

  await check("scope choices: read and write per resource for oneself, dormant ones marked for a user without the grant", async () => {
    await page.goto(`${base}${PUBLIC_API}`);
    const scopes = page.getByRole("group", { name: "Scopes (optional)" });
    for (const label of ["companies — read", "companies — write", "persons — read"]) {
      assert(await scopes.getByLabel(label, { exact: true }).count() === 1, `${label} is not offered to the Supervisor for their own key`);
    }
    const owner = page.getByLabel("For which user");
    await owner.selectOption(await owner.locator("option", { hasText: INVOICES }).getAttribute("value"));
    await page.getByRole("button", { name: "Show the choices for this user" }).click();
    await page.getByText(`The key below is for Invoice export <${INVOICES}>`).waitFor();
    assert(await scopes.getByLabel("companies — read", { exact: true }).count() === 1, "companies — read is not offered");
    assert(await scopes.getByLabel("companies — write", { exact: true }).count() === 0, "companies — write is offered");
    const companies = await scopes.getByRole("row").filter({ hasText: "companies" }).first().textContent();
    assert(companies.includes("Write not offered: this user holds read access only."), `companies row: ${companies}`);
    const persons = await scopes.getByRole("row").filter({ hasText: "persons" }).first().textContent();
    assert(persons.includes("dormant") && persons.includes("reaches nothing now"), `persons row: ${persons}`);
    await shot(page, "public-api-scopes.png", { docs: true });
  });

  await check("the usage page leads with a per-key table, and its charts have axes", async () => {
    await main().getByRole("link", { name: "Usage", exact: true }).click();
    const table = page.locator("table.usage-table");
    assert(await table.isVisible(), "no per-key table");
    const row = await table.getByRole("row").filter({ hasText: "ERP invoice export" }).textContent();
    assert(row.includes("key_disabled") && row.includes("user inactive"), `the ERP key's row: ${row}`);
    const [tableTop, chartTop] = await page.evaluate(() => [
      document.querySelector("table.usage-table").getBoundingClientRect().top,
      document.querySelector("svg.chart").getBoundingClientRect().top,
    ]);
    assert(tableTop < chartTop, "the table does not come before the charts");
    assert(await page.locator("svg.chart .y-tick").count() >= 2 && await page.locator("svg.chart .x-tick").count() >= 4, "a chart without ticks");
    await shot(page, "usage.png", { docs: true });
  });

  await check("the audit log filters by day, action and actor, and exports the same events as CSV", async () => {
    await main().getByRole("link", { name: "Audit log", exact: true }).click();
    const today = new Date().toISOString().slice(0, 10);
    await page.getByLabel("From (day)").fill(today);
    await page.getByLabel("To (day, included)").fill(today);
    await page.getByLabel("Action").selectOption("key.");
    await page.getByLabel("Actor contains").fill(ADMIN);
    await page.getByRole("button", { name: "Filter" }).click();
    await page.waitForURL(/actor=/);
    const actions = await page.locator("main table tbody tr td:nth-child(3)").allTextContents();
    assert(actions.length >= 4 && actions.every((a) => a.startsWith("key.")), `filtered actions: ${actions}`);
    const whos = await page.locator("main table tbody tr td:nth-child(2)").allTextContents();
    assert(whos.every((w) => w === ADMIN), `filtered actors: ${whos}`);
    await shot(page, "audit.png", { docs: true });
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("link", { name: "Download these events as CSV" }).click(),
    ]);
    const csv = readFileSync(await download.path(), "utf8").trim().split("\r\n");
    assert(csv[0] === "id,time_utc,actor,action,target,details,source_ip", `CSV header: ${csv[0]}`);
    assert(csv.length - 1 === actions.length, `${csv.length - 1} CSV rows for ${actions.length} events on the page`);
    assert(csv.slice(1).every((line) => line.includes(`,${ADMIN},key.`)), "a CSV row outside the filter");
  });

  for (const width of [1280, 390]) {
    await check(`at ${width} px no console page overflows, no table cell is clipped${width === 1280 ? " and no table scrolls sideways" : ""}`, async () => {
      await page.setViewportSize({ width, height: 900 });
      const paths = ["/console/configuration", PUBLIC_API, "/console/usage", "/console/audit", "/console/users", "/console/groups", "/console/units", "/console/no-such-page"];
      for (const path of paths) {
        await page.goto(`${base}${path}`);
        const problems = await page.evaluate((wide) => {
          const out = [];
          const doc = document.documentElement;
          if (doc.scrollWidth > doc.clientWidth + 1) out.push(`the page is ${doc.scrollWidth} px wide in ${doc.clientWidth} px`);
          for (const cell of document.querySelectorAll("main td, main th")) {
            if (cell.scrollWidth > cell.clientWidth + 1) out.push(`a cell is cut: "${cell.textContent.trim().slice(0, 40)}" (${cell.scrollWidth} > ${cell.clientWidth})`);
          }
          for (const wrap of document.querySelectorAll("main .table-wrap")) {
            if (wide && wrap.scrollWidth > wrap.clientWidth + 1) out.push(`a table scrolls sideways (${wrap.scrollWidth} > ${wrap.clientWidth}): ${wrap.querySelector("th")?.textContent}`);
          }
          return out;
        }, width === 1280);
        assert(problems.length === 0, `${path} at ${width} px: ${problems.join("; ")}`);
        assert(await main().isVisible(), `${path} has no navigation`);
      }
      await page.goto(`${base}/console/configuration`);
      await shot(page, `home-${width}.png`, { docs: width === 390 });
      await page.goto(`${base}/console/audit`);
      await shot(page, `audit-${width}.png`, { docs: width === 390 });
    });
  }
  await page.setViewportSize({ width: 1280, height: 900 });

  await check("logging out ends the session", async () => {
    await page.getByRole("button", { name: "Log out" }).click();
    await page.waitForURL(`${base}/console/login`);
    await page.goto(`${base}/console/configuration`);
    assert(page.url() === `${base}/console/login`, `still logged in: ${page.url()}`);
  });

  await check("a User configurator is refused a user in Supervisor, beside the form, with what was typed kept", async () => {
    await logIn(page, base, HR);
    await main().getByRole("link", { name: "Users", exact: true }).click();
    await page.getByLabel("Name", { exact: true }).fill("Mallory");
    await page.getByLabel("Email", { exact: true }).fill("mallory@acme.example");
    await page.getByRole("group", { name: "Groups" }).getByLabel("Supervisor", { exact: false }).check();
    await page.getByLabel(/^Password \(optional/).fill(PASSWORD);
    await page.getByRole("button", { name: "Create the user" }).click();
    const error = page.getByRole("region", { name: "Create a user" }).getByRole("alert");
    await error.waitFor();
    const text = await error.textContent();
    assert(text.startsWith("No user created:") && text.includes("Supervisor"), `the form error says: ${text}`);
    assert((await page.getByLabel("Email", { exact: true }).inputValue()) === "mallory@acme.example", "the typed email is gone");
    assert(await page.getByRole("group", { name: "Groups" }).getByLabel("Supervisor", { exact: false }).isChecked(), "the ticked group is gone");
    assert(await page.getByRole("row").filter({ hasText: "mallory@acme.example" }).count() === 0, "the refused user was created");
    await shot(page, "ceiling-refusal.png", { docs: true });
    await page.getByRole("button", { name: "Log out" }).click();
    await page.waitForURL(`${base}/console/login`);
  });
}

try {
  await main();
} catch (e) {
  failed++;
  console.log(`FAIL: setting up the browser test\n  ${e?.stack || e}`);
  if (work && existsSync(join(work, "server.log"))) {
    console.log(readFileSync(join(work, "server.log"), "utf8").split("\n").slice(-20).join("\n"));
  }
} finally {
  clearTimeout(watchdog);
  await cleanup();
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
