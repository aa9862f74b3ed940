// The page's one WebSocket: kept open in every view so that events keep arriving; reconnects with backoff.
import { api } from './ui.js';

const MIN_BACKOFF = 0.5;
const MAX_BACKOFF = 8;

export const requestedCamera = new URLSearchParams(location.search).get('camera');
export const cameraQuery = requestedCamera ? `?camera=${encodeURIComponent(requestedCamera)}` : '';
const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/webcam${cameraQuery}`;

const handlers = { change: [], open: [], frame: [], status: [], event: [] };

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

function onMessage(ev) {
  if (typeof ev.data !== 'string') {
    const meta = pendingMeta;
    pendingMeta = null;
    emit('frame', { data: ev.data, meta, at: Date.now() });
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
  else if (msg.type === 'status') emit('status', msg);
  else if (msg.type === 'event' && msg.event && typeof msg.event === 'object') emit('event', msg.event);
}

export function connect() {
  link.retryAt = 0;
  pendingMeta = null;
  const sock = (link.socket = new WebSocket(wsUrl));
  sock.binaryType = 'arraybuffer';
  let opened = false;
  sock.onopen = () => {
    opened = true;
    backoff = MIN_BACKOFF;
    link.openedAt = Date.now();
    link.opens += 1;
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
