// A VM's screen (noVNC) or serial console (xterm.js), over the console's own websocket.
// Both libraries are served by the console from its npm lockfile install, under /vendor.
const box = document.getElementById("stream");
const status = document.getElementById("stream-status");
const kind = box.dataset.kind;
const socketUrl = () => {
  const u = new URL(box.dataset.socket, location.href);
  u.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  return u.href;
};
let session = null;
let generation = 0; // a closed socket of an earlier connection says nothing

function say(text, failed) {
  status.textContent = text;
  status.classList.toggle("failed", Boolean(failed));
}

// Why the socket ended: the console's close reason, or what a refused upgrade means.
function ended(event, opened) {
  if (event.reason) return event.reason;
  if (!opened) return "Could not connect: the VM may have stopped, or you may not open it. Reload the VM's page to see.";
  return "The connection dropped.";
}

function open() {
  const ws = new WebSocket(socketUrl(), ["binary"]);
  ws.binaryType = "arraybuffer";
  const mine = generation;
  let opened = false;
  ws.addEventListener("open", () => { opened = true; });
  ws.addEventListener("close", (event) => {
    if (mine !== generation) return;
    box.dataset.state = "closed";
    say(ended(event, opened), true);
    document.getElementById("stream-cad")?.setAttribute("disabled", "");
  });
  return ws;
}

async function connectVnc() {
  const { default: RFB } = await import("/vendor/novnc/core/rfb.js");
  box.replaceChildren();
  const rfb = new RFB(box, open(), { wsProtocols: ["binary"] });
  rfb.scaleViewport = true;
  rfb.focusOnClick = true;
  rfb.addEventListener("connect", () => {
    box.dataset.state = "connected";
    say("Connected.");
    document.getElementById("stream-cad")?.removeAttribute("disabled");
    rfb.focus();
  });
  rfb.addEventListener("securityfailure", (e) => say(`The VNC server refused: ${e.detail.reason || e.detail.status}`, true));
  return { close: () => rfb.disconnect(), cad: () => rfb.sendCtrlAltDel() };
}

async function connectSerial() {
  const { Terminal } = await import("/vendor/xterm/lib/xterm.mjs");
  box.replaceChildren();
  const term = new Terminal({ convertEol: false, cursorBlink: true, rows: 30, cols: 100 });
  term.open(box);
  window.vmImportTerminal = term;
  const ws = open();
  const encoder = new TextEncoder();
  ws.addEventListener("open", () => {
    box.dataset.state = "connected";
    say("Connected. Press Enter for a prompt.");
    term.focus();
  });
  ws.addEventListener("message", (e) => term.write(new Uint8Array(e.data)));
  term.onData((data) => { if (ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(data)); });
  return { close: () => ws.close(), cad: () => {} };
}

async function connect() {
  generation += 1;
  session?.close();
  box.dataset.state = "connecting";
  say("Connecting…");
  try {
    session = await (kind === "vnc" ? connectVnc() : connectSerial());
  } catch (e) {
    say(`Could not start: ${e.message}`, true);
  }
}

document.getElementById("stream-reconnect").addEventListener("click", connect);
document.getElementById("stream-cad")?.addEventListener("click", () => session?.cad());
document.getElementById("stream-fullscreen").addEventListener("click", () => box.requestFullscreen?.());
connect();
