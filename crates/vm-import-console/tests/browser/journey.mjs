// New import's journey in Debian's Chromium, as a tenant: run, one phase at a time, by
// the real-cluster test `new_import::a_tenant_imports_in_chromium_and_follows_it_to_adoption`
// (crates/e2e), against the console on the real API server, the inventory stand-in and
// the controller.
//
// Environment: JOURNEY_URL (the console), JOURNEY_NS, JOURNEY_TOKEN (the tenant's, sent
// as the sign-in proxy would), JOURNEY_PHASE (`import`, `follow` or `adopted`),
// JOURNEY_PLAN (for `follow`), CHROMIUM. Prints one JSON line of findings.
import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const base = env("JOURNEY_URL");
const ns = env("JOURNEY_NS");
const phase = env("JOURNEY_PHASE");

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const found = { phase };
try {
  const context = await browser.newContext({
    extraHTTPHeaders: { Authorization: `Bearer ${env("JOURNEY_TOKEN")}` },
    viewport: { width: 1280, height: 900 },
  });
  const page = await context.newPage();
  page.on("pageerror", (e) => { found.pageErrors = [...(found.pageErrors || []), e.message]; });
  if (phase === "import") {
    await page.goto(`${base}/ns/${ns}/imports`);
    await page.getByRole("link", { name: "New import" }).click();
    await page.getByRole("link", { name: "vsphere", exact: true }).click();
    await page.getByText("200 of 200 VMs").waitFor();
    await page.getByRole("searchbox", { name: "Search VMs" }).fill("db-0");
    await page.getByRole("button", { name: "Search" }).click();
    await page.getByText("10 of 200 VMs").waitFor();
    for (const vm of ["db-00", "db-01", "db-02"]) {
      await page.getByRole("checkbox", { name: `Choose ${vm}` }).check();
    }
    await page.getByRole("button", { name: "Next: map networks and storage" }).click();
    await page.getByRole("heading", { name: "Map 3 VMs from vsphere" }).waitFor();
    found.networks = await page.locator("table.networks tbody tr").evaluateAll((trs) => trs.map((tr) => tr.dataset.network));
    found.datastores = await page.locator("table.datastores tbody tr").evaluateAll((trs) => trs.map((tr) => tr.dataset.datastore));
    await page.getByLabel("Name", { exact: true }).fill("db-batch");
    await page.getByLabel("Network for dmz").selectOption("ignored");
    await page.getByLabel("StorageClass for ssd-01").fill("replicated");
    await page.getByLabel("StorageClass for hdd-01").fill("replicated");
    await page.getByRole("button", { name: "Review" }).click();
    await page.getByRole("heading", { name: "Review import db-batch" }).waitFor();
    await page.getByRole("button", { name: "Import 3 VMs" }).click();
    await page.getByRole("status").filter({ hasText: "Import db-batch was created." }).waitFor();
    found.created = true;
  } else if (phase === "follow") {
    await page.goto(`${base}/ns/${ns}/imports`);
    await page.getByRole("link", { name: env("JOURNEY_PLAN") }).click();
    const bar = 'section[data-source-vm="vm-1001"] tr[data-step="DiskTransferV2v"] progress';
    await page.waitForSelector(bar);
    const first = Number(await page.locator(bar).getAttribute("value"));
    const loads = [];
    page.on("framenavigated", () => loads.push(1));
    await page.waitForFunction(([selector, before]) => {
      const el = document.querySelector(selector);
      return el && Number(el.getAttribute("value")) > before;
    }, [bar, first], { timeout: 20_000 });
    found.moved = [first, Number(await page.locator(bar).getAttribute("value"))];
    found.reloads = loads.length;
    found.stuck = await page.locator('section[data-source-vm="vm-1009"] p.stuck').innerText();
  } else if (phase === "adopted") {
    await page.goto(`${base}/ns/${ns}`);
    await page.locator('tr[data-vm="db-00"]').waitFor();
    found.vms = await page.locator("tr[data-vm]").evaluateAll((trs) => trs.map((tr) => tr.dataset.vm));
    found.labelled = await page.locator('tr[data-vm="db-02"]').innerText();
  } else {
    throw new Error(`unknown phase ${phase}`);
  }
} catch (e) {
  found.error = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(found));
