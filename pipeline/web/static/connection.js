// The page's one WebSocket, kept open in every view so that events keep arriving; reconnects with backoff.
// It brings every camera's status (once a second) and events, and the frames of the cameras that
// something on screen shows (the live view, the grid's tiles in view): each says so with show(), and
// the server is told at once, so a tile scrolled away or a hidden tab receives no frames at all.
import { cs } from './state.js';
import { api } from './ui.js';

const MIN_BACKOFF = 0.5;
const MAX_BACKOFF = 8;
// A camera missing from the server's list stays this long: a restarting gateway lists none for a moment.
const GONE_AFTER_MS = 15_000;

const handlers = { change: [], open: [], frame: [], cameras: [], event: [] };

export function on(type, fn) {
  handlers[type].push(fn);
}

function emit(type, arg) {
  for (const fn of handlers[type]) {
    try {
      fn(arg);
    } catch (err) {
      console.error(err);
    }
  }
}

export const link = {
  socket: null,
  retryAt: 0, // epoch ms of the scheduled reconnect; 0 = none pending
  openedAt: 0,
  opens: 0,
  get isOpen() {
    return this.socket?.readyState === WebSocket.OPEN;
  },
};

let backoff = MIN_BACKOFF;
let pendingMeta = null; // "frame" header waiting for its binary message
const shown = new Map(); // camera -> the things on the page that show it now
let told = new Set(); // the cameras this socket sends the frames of
const lastListed = new Map(); // camera -> epoch ms it was last in the server's list

// Whether `who` (the live view, a tile) shows `camera` now; the socket follows the union of them all.
export function show(who, camera, on) {
  let showing = shown.get(camera);
  if (on) {
    if (!showing) shown.set(camera, (showing = new Set()));
    showing.add(who);
  } else if (showing) {
    showing.delete(who);
    if (!showing.size) shown.delete(camera);
  }
  tell();
}

// One message per camera that changed, so that no message grows with the number of cameras.
function tell() {
  const sock = link.socket;
  if (sock?.readyState !== WebSocket.OPEN) return;
  for (const camera of [...told]) {
    if (shown.has(camera)) continue;
    sock.send(JSON.stringify({ type: 'unwatch', camera }));
    told.delete(camera);
  }
  for (const camera of shown.keys()) {
    if (told.has(camera)) continue;
    sock.send(JSON.stringify({ type: 'watch', camera }));
    told.add(camera);
  }
  cs.watching = [...told].sort();
}

function onCameras(cameras) {
  const now = Date.now();
  for (const name of Object.keys(cameras)) lastListed.set(name, now);
  for (const [name, at] of lastListed) if (now - at > GONE_AFTER_MS) lastListed.delete(name);
  cs.info = cameras;
  const list = [...lastListed.keys()].sort();
  const changed = list.join('\n') !== cs.cameras.join('\n');
  cs.cameras = list;
  emit('cameras', changed);
}

function onMessage(ev) {
  if (typeof ev.data !== 'string') {
    const meta = pendingMeta;
    pendingMeta = null;
    const camera = meta?.camera;
    if (typeof camera !== 'string') return;
    cs.received[camera] = (cs.received[camera] ?? 0) + 1;
    if (document.hidden) cs.hiddenFrames += 1;
    // A frame the server had sent before it was told to stop: nothing shows that camera any more.
    if (shown.has(camera)) emit('frame', { camera, data: ev.data, meta, at: Date.now() });
    return;
  }
  let msg;
  try {
    msg = JSON.parse(ev.data);
  } catch {
    return;
  }
  if (!msg || typeof msg !== 'object') return;
  if (msg.type === 'frame') pendingMeta = msg;
  else if (msg.type === 'cameras' && msg.cameras && typeof msg.cameras === 'object') onCameras(msg.cameras);
  else if (msg.type === 'event' && msg.event && typeof msg.event === 'object') emit('event', msg.event);
}

export function connect() {
  link.retryAt = 0;
  pendingMeta = null;
  told = new Set(shown.keys());
  cs.watching = [...told].sort();
  const watch = [...told].map(encodeURIComponent).join(',');
  const sock = (link.socket = new WebSocket(
    `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/webcam?watch=${watch}`));
  sock.binaryType = 'arraybuffer';
  let opened = false;
  sock.onopen = () => {
    opened = true;
    backoff = MIN_BACKOFF;
    link.openedAt = Date.now();
    link.opens += 1;
    tell(); // what changed on screen while the socket was opening
    emit('open', link.opens);
    emit('change');
  };
  sock.onmessage = onMessage;
  sock.onerror = () => sock.close();
  sock.onclose = () => {
    if (link.socket !== sock) return;
    // Refused before it opened: perhaps the session ended. api() goes to the login page on a 401.
    if (!opened) api('/api/session').catch(() => {});
    scheduleReconnect();
  };
  emit('change');
}

function scheduleReconnect() {
  if (link.retryAt) return;
  const delay = Math.min(backoff * (0.9 + Math.random() * 0.2), MAX_BACKOFF);
  backoff = Math.min(backoff * 2, MAX_BACKOFF);
  link.retryAt = Date.now() + delay * 1000;
  setTimeout(connect, delay * 1000);
  emit('change');
}
