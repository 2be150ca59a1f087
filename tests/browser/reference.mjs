// Browser test of the console's API reference (/console/api, issue 19) in Debian's headless
// Chromium with playwright-core, against the debug keygate binary on a fresh database, at 1 280
// and 390 px: no horizontal page overflow, the largest id written exactly, the example request
// and answer of an operation visible, the problem answers described once (not under every
// operation). Start-up helpers are copied from run.mjs (which runs its own test when imported).
// Screenshots go to target/screenshots/. Prints `N passed, M failed` and exits non-zero on
// failure. With CI=true a missing Chromium or keygate binary is a failure, never a skip.

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
const CI = process.env.CI === "true";
const TENANT = "acme";
const ADMIN = "admin@acme.example";
const PASSWORD = "correct horse battery staple";
const OVERALL_TIMEOUT_MS = 180_000;
/// `i64::MAX`, the largest unit and record id, as the document writes it.
const LARGEST_ID = "9223372036854775807";

let passed = 0;
let failed = 0;
let server;
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
  console.error(`FAIL: the reference browser test did not finish within ${OVERALL_TIMEOUT_MS / 1000} s`);
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

/// Runs one named check; the checks are independent, so a failure does not stop the others.
async function check(name, body) {
  const started = Date.now();
  try {
    await body();
    passed++;
    console.log(`ok: ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL: ${name}\n  ${String(e?.stack || e).split("\n").slice(0, 6).join("\n  ")}`);
  }
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
  work = mkdtempSync(join(tmpdir(), "keygate-reference-"));
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
  server = spawn(BIN, ["--data-dir", dataDir, "serve", "--listen", `127.0.0.1:${port}`], {
    stdio: ["ignore", log, log],
    env: { ...process.env, KEYGATE_LOG: "info,sqlx=warn" },
  });
  await waitUntilUp(base);

  context = await chromium.launchPersistentContext(join(work, "profile"), {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1280, height: 900 },
    timeout: 30_000,
  });
  context.setDefaultTimeout(10_000);
  context.setDefaultNavigationTimeout(15_000);
  const page = context.pages()[0] ?? (await context.newPage());

  await page.goto(`${base}/console/login`);
  await page.getByLabel("Tenant", { exact: true }).fill(TENANT);
  await page.getByLabel("Email", { exact: true }).fill(ADMIN);
  await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.waitForURL((url) => !url.pathname.endsWith("/login"));

  for (const width of [1280, 390]) {
    await page.setViewportSize({ width, height: 900 });
    await page.goto(`${base}/console/api`);

    await check(`${width} px: the page does not scroll sideways`, async () => {
      const { scrollWidth, clientWidth, wide } = await page.evaluate(() => ({
        scrollWidth: document.documentElement.scrollWidth,
        clientWidth: document.documentElement.clientWidth,
        // The elements that stick out of the viewport, for the message.
        wide: [...document.querySelectorAll("main *")]
          .filter((e) => e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)
          .slice(0, 3)
          .map((e) => `${e.tagName.toLowerCase()}.${e.className} ${Math.round(e.getBoundingClientRect().right)} px`),
      }));
      assert(scrollWidth <= clientWidth, `the page is ${scrollWidth} px wide in a ${clientWidth} px window: ${wide.join(", ")}`);
    });

    await check(`${width} px: the largest id reads ${LARGEST_ID}, exactly`, async () => {
      // Read as text, never through JSON.parse or Number (a double would round it to 9223372036854776000).
      const text = await page.locator("main").innerText();
      assert(text.includes(`1 to ${LARGEST_ID}`), "the unit id's range is not written exactly");
      assert(!text.includes("9223372036854776000") && !text.includes("9223372036854775808"), "a rounded largest id is shown");
    });

    await check(`${width} px: an operation shows its example request and answer`, async () => {
      const op = page.locator("article#readViewCompanies");
      const request = op.locator("figure", { hasText: "Example request" }).locator("pre");
      const answer = op.locator("figure", { hasText: "Example answer: 200" }).locator("pre");
      await request.scrollIntoViewIfNeeded();
      assert(await request.isVisible(), "the example request is not visible");
      assert(await answer.isVisible(), "the example answer is not visible");
      const requestText = await request.innerText();
      assert(
        requestText.startsWith("GET /rest/v1/1/views/companies?externalFilter=isClient%20%3D%20true"),
        `the example request reads: ${requestText.split("\n")[0]}`,
      );
      assert((await answer.innerText()).includes('"name": "Umbrella Agency 1"'), "the example answer has no demo row");
      const box = await answer.boundingBox();
      assert(box.x >= 0 && box.x + box.width <= width, `the example answer spans ${box.x}..${box.x + box.width} px`);
      await page.screenshot({ path: join(SHOTS, `reference-example-${width}.png`) });
    });

    await check(`${width} px: the problem answers are described once, in the Errors section`, async () => {
      const problemTexts = await page.getByText("A problem document:").count();
      const statuses = await page.locator("#errors article").count();
      assert(statuses >= 8, `${statuses} statuses in the Errors section`);
      assert(problemTexts === statuses, `"A problem document:" is written ${problemTexts} times for ${statuses} statuses`);
      const links = page.locator("article#readViewCompanies .apiref-errors a[href^='#error-']");
      assert((await links.count()) >= 6, "the operation does not link its error statuses");
      const height = await page.evaluate(() => document.documentElement.scrollHeight);
      console.log(`  the page is ${height} px high at ${width} px`);
    });
  }
}

try {
  await main();
} catch (e) {
  failed++;
  console.log(`FAIL: setting up the reference browser test\n  ${e?.stack || e}`);
  if (work && existsSync(join(work, "server.log"))) {
    console.log(readFileSync(join(work, "server.log"), "utf8").split("\n").slice(-20).join("\n"));
  }
} finally {
  clearTimeout(watchdog);
  await cleanup();
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
