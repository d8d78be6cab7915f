// Browser tests of the Imported VMs console: Debian's Chromium, driven by playwright-core,
// against the real console binary and the recording stand-in API server.
//
//   make browser-test                        # what CI runs (builds, installs, runs)
//   UPDATE_SCREENSHOTS=1 make browser-test   # also rewrites docs/screenshots/*.png
//
// The platform's auth proxy is played by the browser context: it adds the
// `Authorization: Bearer …` header to every request, as the proxy would.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { createServer } from "node:net";
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../../../..");
const target = process.env.CARGO_TARGET_DIR || path.join(root, "target");
const children = [];
let api, consoleUrl, browser;

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

function start(binary, args) {
  const child = spawn(binary, args, { stdio: ["ignore", "pipe", process.env.DEBUG ? "inherit" : "ignore"] });
  children.push(child);
  return child;
}

async function waitFor(url) {
  for (let i = 0; i < 100; i++) {
    try {
      const r = await fetch(url);
      if (r.ok) return;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} never answered`);
}

before(async () => {
  const standin = start(path.join(target, "debug/examples/standin"), []);
  const [apiUrl, metricsUrl] = await new Promise((resolve) => {
    const lines = [];
    createInterface({ input: standin.stdout }).on("line", (line) => {
      lines.push(line.trim());
      if (lines.length === 2) resolve(lines);
    });
  });
  api = apiUrl;
  const port = await freePort();
  consoleUrl = `http://127.0.0.1:${port}`;
  start(path.join(target, "debug/vm-import-console"), [
    "--api-server", api, "--http-addr", `127.0.0.1:${port}`, "--secure-cookies=false",
    "--metrics-url", metricsUrl, "--inventory-url", api,
  ]);
  await waitFor(`${consoleUrl}/healthz`);
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await browser?.close();
  for (const child of children) child.kill();
});

async function page(token, colorScheme = "light") {
  const context = await browser.newContext({
    extraHTTPHeaders: { Authorization: `Bearer ${token}` },
    colorScheme,
    viewport: { width: 1280, height: 720 },
  });
  return context.newPage();
}

async function apiRequests() {
  return (await fetch(`${api}/__requests`)).json();
}

test("the list updates live without a reload", async () => {
  const p = await page("viewer-token");
  await p.goto(`${consoleUrl}/ns/tenant-demo`);
  const web = p.locator('tr[data-vm="web-01"]');
  await web.locator(".badge.running").waitFor();
  assert.equal(await p.locator("tbody tr").count(), 2);
  assert.match(await web.innerText(), /10\.244\.1\.17/);
  const loads = [];
  p.on("framenavigated", () => loads.push(1));
  await fetch(`${api}/__status/web-01/Stopped`, { method: "POST" });
  await web.locator(".badge.stopped").waitFor({ timeout: 10_000 });
  assert.equal(loads.length, 0, "no reload");
  await fetch(`${api}/__status/web-01/Running`, { method: "POST" });
  await p.context().close();
});

test("stop asks first, then goes to the API with the user's token", async () => {
  const p = await page("admin-token");
  await p.goto(`${consoleUrl}/ns/tenant-demo/vms/web-01`);
  await p.getByRole("link", { name: "Stop" }).click();
  await p.getByRole("heading", { name: "Stop web-01?" }).waitFor();
  const before = (await apiRequests()).filter((r) => r.method === "PUT").length;
  assert.equal(before, 0, "nothing happens before the confirmation");
  await p.getByRole("button", { name: "Yes, stop it" }).click();
  await p.getByRole("status").filter({ hasText: "Asked KubeVirt to stop web-01." }).waitFor();
  const puts = (await apiRequests()).filter((r) => r.method === "PUT");
  assert.deepEqual(puts.map((r) => [r.path, r.token]), [
    ["/apis/subresources.kubevirt.io/v1/namespaces/tenant-demo/virtualmachines/web-01/stop", "admin-token"],
  ]);
  await fetch(`${api}/__status/web-01/Running`, { method: "POST" });
  await p.context().close();
});

test("a reader is offered no action they may not take", async () => {
  const p = await page("viewer-token");
  await p.goto(`${consoleUrl}/ns/tenant-demo/vms/db-01`);
  for (const name of ["Start", "Stop", "Restart", "Fully adopt…"]) {
    assert.equal(await p.getByRole("link", { name }).count(), 0, `${name} is not a link`);
  }
  assert.match(await p.locator("p.denied").innerText(), /Your permissions do not include: start/);
  const reviews = (await apiRequests()).filter((r) => r.path.includes("selfsubjectaccessreviews") && r.token === "viewer-token");
  assert.ok(reviews.length >= 4, "asked the API server with the reader's token");
  await p.context().close();
});

test("a 403 from the API server is shown as a plain message", async () => {
  const p = await page("viewer-token");
  await p.goto(`${consoleUrl}/ns/tenant-demo/vms/db-01/start`);
  await p.getByRole("button", { name: "Yes, start it" }).click();
  const alert = p.getByRole("alert");
  await alert.waitFor();
  assert.match(await alert.innerText(), /you are not allowed to start VirtualMachine db-01/);
  assert.match(await p.title(), /Not allowed/);
  await p.context().close();
});

test("full adoption shows the plan and its warnings before anything is created", async () => {
  const p = await page("admin-token");
  await p.goto(`${consoleUrl}/ns/tenant-demo/vms/web-01/adopt`);
  await p.getByLabel("Instance name").fill("web");
  await p.getByRole("button", { name: "Preview" }).click();
  await p.getByText("Not carried over", { exact: true }).waitFor();
  assert.match(await p.locator("pre.plan").innerText(), /VMDisk web-disk-0: takes over PVC vm-import-demo-web-01-disk-0/);
  const creates = async () =>
    (await apiRequests()).filter((r) => r.method === "POST" && !r.path.includes("selfsubjectaccessreviews"));
  assert.equal((await creates()).length, 0);
  p.once("dialog", (d) => d.accept());
  await p.getByRole("button", { name: "Adopt web-01" }).click();
  await p.getByRole("status").filter({ hasText: "Full adoption of web-01 requested" }).waitFor();
  const posts = await creates();
  assert.equal(posts.length, 1);
  assert.equal(posts[0].token, "admin-token");
  await p.context().close();
});

test("the detail page charts CPU, memory, network and disk, with a readout and ranges", async () => {
  const p = await page("viewer-token");
  await p.goto(`${consoleUrl}/ns/tenant-demo/vms/web-01`);
  const charts = p.locator("section.metrics figure.chart");
  await charts.first().waitFor(); // fetched right after the page
  assert.equal(await charts.count(), 4);
  assert.deepEqual(await p.locator("section.metrics figcaption").allInnerTexts(),
    ["CPU (cores, UTC)", "Memory (bytes, UTC)", "Network (bytes per second, UTC)", "Disk (bytes per second, UTC)"]);
  const readout = await charts.first().locator("rect.slot title").first().textContent();
  assert.match(readout, /UTC: used: \d+\.\d+ cores/);
  await p.getByRole("link", { name: "7d" }).click();
  await p.locator('.range.current', { hasText: "7d" }).waitFor();
  await p.locator("section.metrics svg").first().waitFor();
  assert.equal(await p.locator("section.metrics svg").count(), 4);
  const list = await page("viewer-token");
  await list.goto(`${consoleUrl}/ns/tenant-demo`);
  // The trends come after the list, and stay through the rows' live refresh.
  await list.locator('tr[data-vm="web-01"] svg.spark').first().waitFor();
  assert.equal(await list.locator('tr[data-vm="web-01"] svg.spark').count(), 2);
  assert.match(await list.locator('tr[data-vm="db-01"] td.trend span.spark').first().getAttribute("title"),
    /no data in the last hour/);
  // A status change: the refresh replaces the rows, and the trends are put back.
  await fetch(`${api}/__status/db-01/Running`, { method: "POST" });
  await list.locator('tr[data-vm="db-01"] .badge', { hasText: "Running" }).waitFor();
  assert.equal(await list.locator('tr[data-vm="web-01"] svg.spark').count(), 2, "kept after a refresh");
  await fetch(`${api}/__status/db-01/Stopped`, { method: "POST" });
  await p.context().close();
  await list.context().close();
});

test("an import's steps move live, and a stuck VM says why", async () => {
  const p = await page("viewer-token");
  await p.goto(`${consoleUrl}/ns/tenant-demo`);
  await p.getByRole("link", { name: "Imports" }).click();
  const rows = p.locator("table.imports tbody tr");
  assert.deepEqual(await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.import)),
    ["vm-import-demo", "vm-import-batch2"], "the application's import first");
  await p.getByRole("link", { name: "vm-import-batch2" }).click();
  const transfer = p.locator('section[data-source-vm="vm-201"] tr[data-step="DiskTransfer"] progress');
  const first = Number(await transfer.getAttribute("value"));
  const loads = [];
  p.on("framenavigated", () => loads.push(1));
  await p.waitForFunction((before) => {
    const bar = document.querySelector('section[data-source-vm="vm-201"] tr[data-step="DiskTransfer"] progress');
    return bar && Number(bar.getAttribute("value")) > before;
  }, first, { timeout: 15_000 });
  assert.equal(loads.length, 0, "no reload");
  const stuck = p.locator('section[data-source-vm="vm-202"] p.stuck');
  assert.match(await stuck.innerText(), /NFC connection refused/);
  await p.context().close();
});

test("screenshots, light and dark", { skip: !process.env.UPDATE_SCREENSHOTS }, async () => {
  const dir = path.join(root, "docs/screenshots");
  mkdirSync(dir, { recursive: true });
  for (const scheme of ["light", "dark"]) {
    const p = await page("admin-token", scheme);
    await p.goto(`${consoleUrl}/ns/tenant-demo`);
    await p.screenshot({ path: path.join(dir, `list-${scheme}.png`) });
    await p.goto(`${consoleUrl}/ns/tenant-demo/vms/web-01`);
    await p.locator("section.metrics figure.chart").first().waitFor();
    await p.screenshot({ path: path.join(dir, `detail-${scheme}.png`), fullPage: true });
    await p.locator("section.metrics").screenshot({ path: path.join(dir, `charts-${scheme}.png`) });
    await p.goto(`${consoleUrl}/ns/tenant-demo/imports`);
    await p.screenshot({ path: path.join(dir, `imports-${scheme}.png`) });
    await p.goto(`${consoleUrl}/ns/tenant-demo/imports/vm-import-batch2`);
    await p.screenshot({ path: path.join(dir, `import-${scheme}.png`), fullPage: true });
    await p.context().close();
  }
});

test("a tenant finds 3 of 200 VMs by search, maps them, reviews, and imports", async () => {
  const shots = process.env.UPDATE_SCREENSHOTS ? path.join(root, "docs/screenshots") : null;
  const p = await page("admin-token");
  await p.goto(`${consoleUrl}/ns/tenant-demo/imports`);
  await p.getByRole("link", { name: "New import" }).click();
  await p.getByRole("link", { name: "vsphere", exact: true }).click();
  await p.getByText("200 of 200 VMs").waitFor();
  const search = p.getByRole("searchbox", { name: "Search VMs" });
  await search.fill("db-0");
  await p.getByRole("button", { name: "Search" }).click();
  await p.getByText("10 of 200 VMs").waitFor();
  await p.getByRole("checkbox", { name: "Choose db-00" }).check();
  await p.getByRole("checkbox", { name: "Choose db-02" }).check();
  await p.locator("#chosen", { hasText: "2 chosen: db-00, db-02" }).waitFor();
  if (shots) {
    await p.evaluate(() => window.scrollTo(0, 0));
    await p.screenshot({ path: path.join(shots, "new-import-picker.png") });
  }
  // Another search keeps what was chosen; a VM with a critical concern cannot be.
  await search.fill("-0");
  await p.getByRole("button", { name: "Search" }).click();
  await p.locator("#chosen", { hasText: "2 chosen: db-00, db-02" }).waitFor();
  assert.ok(await p.getByRole("checkbox", { name: "Choose mail-01" }).isDisabled(), "a shared disk blocks mail-01");
  await p.getByRole("checkbox", { name: "Choose web-03" }).check();
  await p.getByRole("button", { name: "Next: map networks and storage" }).click();
  await p.getByRole("heading", { name: "Map 3 VMs from vsphere" }).waitFor();
  // Only what the three use: two networks and two datastores.
  assert.equal(await p.locator("table.networks tbody tr").count(), 2);
  assert.equal(await p.locator("table.datastores tbody tr").count(), 2);
  await p.getByLabel("Network for backend").selectOption("multus:backend-net");
  await p.getByLabel("StorageClass for ssd-01").fill("replicated");
  await p.getByLabel("StorageClass for hdd-01").fill("replicated");
  if (shots) await p.screenshot({ path: path.join(shots, "new-import-mapping.png"), fullPage: true });
  await p.getByRole("button", { name: "Review" }).click();
  await p.getByRole("heading", { name: "Review import vsphere-import" }).waitFor();
  const object = JSON.parse(await p.locator("#application").innerText());
  assert.deepEqual(object.spec.vms.map((v) => [v.id, v.targetName]),
    [["vm-1001", "db-00"], ["vm-1017", "db-02"], ["vm-1024", "web-03"]]);
  assert.deepEqual(object.spec.networks, [
    { sourceId: "network-1", type: "pod" },
    { sourceId: "network-2", type: "multus", name: "backend-net" },
  ]);
  assert.equal((await apiRequests()).filter((r) => r.method === "POST" && r.path.includes("vmimports")).length, 0,
    "nothing is created before Import");
  if (shots) await p.screenshot({ path: path.join(shots, "new-import-review.png"), fullPage: true });
  await p.getByRole("button", { name: "Import 3 VMs" }).click();
  await p.getByRole("status").filter({ hasText: "Import vsphere-import was created." }).waitFor();
  const posts = (await apiRequests()).filter((r) => r.method === "POST" && r.path.includes("vmimports"));
  assert.deepEqual(posts.map((r) => [r.path.split("?")[0], r.token]),
    [["/apis/apps.cozystack.io/v1alpha1/namespaces/tenant-demo/vmimports", "admin-token"]]);
  const inventory = (await apiRequests()).filter((r) => r.path.startsWith("/providers/"));
  assert.ok(inventory.length >= 16 && inventory.every((r) => r.token === "admin-token"),
    "the inventory is read with the user's token only");
  await p.context().close();
});

test("one VM's import is cancelled after a confirmation, the others go on", async () => {
  const p = await page("admin-token");
  await p.goto(`${consoleUrl}/ns/tenant-demo/imports/vm-import-batch2`);
  assert.equal(await p.locator('section[data-source-vm="vm-202"] a', { hasText: "Cancel" }).count(), 0,
    "a failed VM has nothing to cancel");
  await p.locator('section[data-source-vm="vm-201"]').getByRole("link", { name: "Cancel this VM's import…" }).click();
  await p.getByRole("heading", { name: "Cancel the import of app-01?" }).waitFor();
  await p.getByRole("button", { name: "Yes, cancel it" }).click();
  await p.getByText("Asked Forklift to cancel the import of VM vm-201.").waitFor();
  const vm = p.locator('section[data-source-vm="vm-201"]');
  assert.match(await vm.innerText(), /Cancel asked: Forklift has not acted on it yet\./);
  assert.equal(await vm.getByRole("link", { name: "Cancel this VM's import…" }).count(), 0);
  const patches = (await apiRequests()).filter((r) => r.method === "PATCH");
  assert.deepEqual(patches.map((r) => [r.path.split("?")[0], r.token]),
    [["/apis/forklift.konveyor.io/v1beta1/namespaces/tenant-demo/migrations/vm-import-batch2-1", "admin-token"]]);
  await p.context().close();
});
