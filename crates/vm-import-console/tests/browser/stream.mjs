// A VM's screen and serial console in Debian's Chromium, as a tenant opens them: run by
// the real-cluster test `console::a_vm_screen_and_serial_console_open_in_the_browser`
// (crates/e2e), against the console behind the sign-in proxy stand-in, the real API
// server's aggregation layer and the test virt-api (Xvnc, and a pseudo-terminal).
//
// Environment: STREAM_VM_URL (the VM's page), STREAM_COLOUR (#rrggbb of the remote
// screen), STREAM_KEYS_URL (the keysyms the VNC server received), STREAM_SCREENSHOT
// (where to write the screenshot), CHROMIUM. Prints one JSON line of findings.
import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const vmUrl = env("STREAM_VM_URL");
const colour = env("STREAM_COLOUR");
const keysUrl = env("STREAM_KEYS_URL");
const want = [1, 3, 5].map((i) => parseInt(colour.slice(i, i + 2), 16));
const close = (rgb) => rgb.every((v, i) => Math.abs(v - want[i]) <= 8);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const found = {};
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("pageerror", (e) => { found.pageErrors = [...(found.pageErrors || []), e.message]; });
  await page.goto(vmUrl);
  found.vncOffered = await page.locator('a[data-stream="vnc"]').count() === 1;

  // Click to first frame: until the canvas's centre shows the remote screen's colour.
  const clicked = Date.now();
  await page.click('a[data-stream="vnc"]');
  await page.waitForSelector('#stream[data-state="connected"]', { timeout: 20000 });
  await page.waitForFunction((want) => {
    const canvas = document.querySelector("#stream canvas");
    if (!canvas || canvas.width === 0) return false;
    const [r, g, b] = canvas.getContext("2d").getImageData(canvas.width / 2, canvas.height / 2, 1, 1).data;
    return [r, g, b].every((v, i) => Math.abs(v - want[i]) <= 8);
  }, want, { timeout: 20000, polling: 50 });
  found.firstFrameMs = Date.now() - clicked;

  // The screenshot, and the colour as the user sees it in the canvas's region of it.
  const box = await page.locator("#stream canvas").boundingBox();
  const png = await page.screenshot({ path: process.env.STREAM_SCREENSHOT || undefined });
  const probe = await browser.newPage();
  found.screenshotPixels = await probe.evaluate(async ({ src, box }) => {
    const img = new Image();
    img.src = src;
    await img.decode();
    const c = document.createElement("canvas");
    c.width = img.width;
    c.height = img.height;
    const ctx = c.getContext("2d");
    ctx.drawImage(img, 0, 0);
    const at = (fx, fy) => [...ctx.getImageData(box.x + box.width * fx, box.y + box.height * fy, 1, 1).data.slice(0, 3)];
    return [at(0.25, 0.25), at(0.5, 0.5), at(0.75, 0.75)];
  }, { src: `data:image/png;base64,${png.toString("base64")}`, box });
  await probe.close();
  found.screenshotMatches = found.screenshotPixels.every(close);

  // Typing reaches the VNC server: the test virt-api notes each key it carries.
  await page.click("#stream canvas");
  await page.keyboard.press("q");
  await page.keyboard.press("Enter");
  for (let i = 0; i < 50; i++) {
    found.keys = await (await fetch(keysUrl)).json();
    if (found.keys.includes(0x71)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  found.ctrlAltDelEnabled = await page.locator("#stream-cad").isEnabled();

  // Reconnect: a new session, and the old one's close says nothing.
  await page.click("#stream-reconnect");
  await page.waitForSelector('#stream[data-state="connected"]', { timeout: 20000 });
  await page.waitForTimeout(500);
  found.reconnected = await page.locator("#stream-status").textContent();

  // The serial console: what is typed comes back through the pseudo-terminal.
  await page.goto(vmUrl.replace(/\/?$/, "/serial"));
  await page.waitForSelector('#stream[data-state="connected"]', { timeout: 20000 });
  await page.click("#stream");
  await page.keyboard.type("echo-through-the-pty");
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => {
    const buf = window.vmImportTerminal?.buffer.active;
    if (!buf) return false;
    let text = "";
    for (let i = 0; i < buf.length; i++) text += buf.getLine(i).translateToString(true) + "\n";
    return (text.match(/echo-through-the-pty/g) || []).length >= 2;
  }, null, { timeout: 20000 });
  found.serialEchoed = true;
} catch (e) {
  found.error = e.message;
} finally {
  await browser.close();
}
console.log(JSON.stringify(found));
