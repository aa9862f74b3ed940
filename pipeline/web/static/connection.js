// The page's one WebSocket, kept open in every view so that events keep arriving; reconnects with backoff.
// It brings every camera's status (once a second) and events, and the frames of the cameras that a
// picture on screen plays (watch()): the server is told at once, so a tile scrolled away or a hidden
// tab receives no frames at all.
import { api } from './ui.js';

const MIN_BACKOFF = 0.5;
const MAX_BACKOFF = 8;
// A camera missing from the server's list stays this long: a restarting gateway lists none for a moment.
const GONE_AFTER_MS = 15_000;

const handlers = { change: [], open: [], cameras: [], event: [] };

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
const watchers = new Map(); // camera -> the functions its frames go to: the pictures playing it
let told = new Set(); // the cameras this socket sends the frames of
let telling = false; // a tell() is due once the current task's changes are all made
let hiddenFrames = 0; // frames brought while the tab was hidden: none, if every picture paused as it should
const lastListed = new Map(); // camera -> epoch ms it was last in the server's list
let known = []; // every camera the page knows, sorted
let statuses = {}; // camera -> its status in the last "cameras" message

// The cameras the page knows, sorted, and each one's status (online, fps, size, motion, viewers...).
export const cameras = () => known;
export const cameraStatus = (camera) => statuses[camera];
// For the tests: what reached a hidden tab.
export const framesWhileHidden = () => hiddenFrames;

// `fn` gets each frame of `camera` until the function returned is called; the socket has the server
// send the cameras that something watches, and no others.
export function watch(camera, fn) {
  if (!watchers.has(camera)) watchers.set(camera, new Set());
  watchers.get(camera).add(fn);
  tellSoon();
  return () => {
    const fns = watchers.get(camera);
    if (!fns?.delete(fn)) return;
    if (!fns.size) watchers.delete(camera);
    tellSoon();
  };
}

// Changes made together (tiles moved, the camera page switching cameras) net out before anything is sent.
function tellSoon() {
  if (telling) return;
  telling = true;
  queueMicrotask(() => {
    telling = false;
    tell();
  });
}

// One message per camera that changed, so that no message grows with the number of cameras.
function tell() {
  const sock = link.socket;
  if (sock?.readyState !== WebSocket.OPEN) return;
  for (const camera of [...told]) {
    if (watchers.has(camera)) continue;
    sock.send(JSON.stringify({ type: 'unwatch', camera }));
    told.delete(camera);
  }
  for (const camera of watchers.keys()) {
    if (told.has(camera)) continue;
    sock.send(JSON.stringify({ type: 'watch', camera }));
    told.add(camera);
  }
}

function onCameras(listed) {
  const now = Date.now();
  for (const name of Object.keys(listed)) lastListed.set(name, now);
  for (const [name, at] of lastListed) if (now - at > GONE_AFTER_MS) lastListed.delete(name);
  statuses = listed;
  const list = [...lastListed.keys()].sort();
  const changed = list.join('\n') !== known.join('\n');
  known = list;
  emit('cameras', changed);
}

function onMessage(ev) {
  if (typeof ev.data !== 'string') {
    const meta = pendingMeta;
    pendingMeta = null;
    const camera = meta?.camera;
    if (typeof camera !== 'string') return;
    if (document.hidden) hiddenFrames += 1;
    // One frame for all its watchers: the first to show it makes the Blob, the others share it.
    // None, for a frame the server had sent before it was told to stop.
    const frame = { camera, data: ev.data, meta, at: Date.now() };
    for (const fn of watchers.get(camera) ?? []) {
      try {
        fn(frame);
      } catch (err) {
        console.error(err);
      }
    }
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
  told = new Set(watchers.keys());
  const watching = [...told].map(encodeURIComponent).join(',');
  const sock = (link.socket = new WebSocket(
    `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/webcam?watch=${watching}`));
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
