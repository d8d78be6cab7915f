// Screenshots of a running `make demo`, one per part, into docs/screenshots/demo-*.png:
//
//   node scripts/demo-screenshots.mjs [http://127.0.0.1:8090]
//
// It drives Debian's Chromium with the browser tests' playwright-core (installed from
// their lockfile by scripts/install-tools.sh), through the demo's sign-in stand-in, so
// it sees what the demo's tenant user sees.
import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(path.join(root, "crates/vm-import-console/tests/browser/package.json"));
const { chromium } = require("playwright-core");

const base = process.argv[2] || "http://127.0.0.1:8090";
const out = path.join(root, "docs/screenshots");
mkdirSync(out, { recursive: true });

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });

async function shot(url, name, ready) {
  const started = Date.now();
  await page.goto(base + url, { waitUntil: "networkidle" });
  if (ready) await page.waitForFunction(ready, null, { timeout: 90_000 });
  await page.screenshot({ path: path.join(out, `demo-${name}.png`), fullPage: true });
  console.log(`demo-${name}.png: ${url} (${Date.now() - started} ms)`);
}

// Label adoption: the imported VMs, each with its record.
await shot("/ns/tenant-demo", "imported-vms", () => document.body.innerText.includes("web-01"));
// A running VM with its charts from VictoriaMetrics, and its start/stop/restart.
await shot("/ns/tenant-demo/vms/web-01", "running-vm-charts", () =>
  document.querySelector("section.metrics figure.chart") && !document.body.innerText.includes("No data in this period"));
// The fully adopted VM, its VMInstance and VMDisk, and the sync.
await shot("/ns/tenant-demo/vms/vm-instance-db-01", "fully-adopted", () => document.body.innerText.includes("db-01"));
// web-01's screen through KubeVirt's `vnc` subresource (Xvnc in the demo).
await shot("/ns/tenant-demo/vms/web-01/vnc", "vm-screen", () => document.querySelector("#stream")?.dataset.state === "connected");
await browser.close();
