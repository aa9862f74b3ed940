// Small helpers shared by the views: the API, toasts, formatting, downloads.

export const $ = (id) => document.getElementById(id);

export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

// The gateway's XSRF cookie: every request that changes something sends it back as a header.
function xsrfToken() {
  const match = /(?:^|;\s*)_xsrf=([^;]*)/.exec(document.cookie);
  return match ? decodeURIComponent(match[1]) : '';
}

// Back to the login page, to return here once logged in (the session ended or was never there).
export function toLogin() {
  location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search + location.hash)}`);
}

// The API answers errors as JSON {"error", "status"}; the message is what the user sees.
export async function api(path, options = {}) {
  const method = (options.method || 'GET').toUpperCase();
  const headers = { ...options.headers };
  if (!['GET', 'HEAD'].includes(method)) headers['X-XSRFToken'] = xsrfToken();
  let response;
  try {
    response = await fetch(path, { cache: 'no-store', ...options, headers });
  } catch {
    throw Object.assign(new Error('The server cannot be reached.'), { status: 0 });
  }
  if (response.status === 401) toLogin();
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const message = body?.error || `${response.status} ${response.statusText}`.trim();
    throw Object.assign(new Error(message), { status: response.status });
  }
  return body;
}

const TOAST_MS = 4500;

function toastBox(parent) {
  let box = [...parent.children].find((el) => el.classList.contains('toasts'));
  if (!box) {
    box = document.createElement('div');
    box.className = 'toasts';
    box.setAttribute('role', 'status');
    box.setAttribute('aria-live', 'polite');
    parent.append(box);
  }
  return box;
}

// A modal dialog sits in the top layer above everything else, so toasts go into it while it is open.
export function toast(message, kind = 'error') {
  const item = document.createElement('div');
  item.className = `toast toast-${kind}`;
  item.textContent = message;
  toastBox(document.querySelector('dialog[open]') ?? document.body).append(item);
  setTimeout(() => {
    item.classList.add('leaving');
    setTimeout(() => item.remove(), 300);
  }, TOAST_MS);
}

// When the dialog closes, its toasts (often the reason it closed) stay on screen.
export function releaseToasts(dialog) {
  const box = [...dialog.children].find((el) => el.classList.contains('toasts'));
  if (box?.children.length) toastBox(document.body).append(...box.children);
}

const pad = (n) => String(n).padStart(2, '0');

// YYYY-MM-DD_HH-MM-SS in local time: sorts by name and is valid on every file system.
export function fileStamp(date) {
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}_` +
    `${pad(date.getHours())}-${pad(date.getMinutes())}-${pad(date.getSeconds())}`;
}

export function formatDuration(seconds) {
  const total = Math.max(0, Math.round(Number(seconds) || 0));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = pad(total % 60);
  return h ? `${h}:${pad(m)}:${s}` : `${m}:${s}`;
}

// Powers of 1024, like the recorder's --max-disk.
export function formatSize(bytes) {
  const n = Number(bytes) || 0;
  if (n < 1024 * 1024) return `${n > 0 ? Math.max(1, Math.round(n / 1024)) : 0} KB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(n < 10 * 1024 ** 2 ? 1 : 0)} MB`;
  return `${(n / 1024 ** 3).toFixed(1)} GB`;
}

export function download(href, filename) {
  const a = document.createElement('a');
  a.href = href;
  a.download = filename;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
}

// Names carry the UTC start time (20261124T013746.154Z_cam0): the fallback for sidecars without one.
export function startOf(rec) {
  if (typeof rec.start === 'number') return rec.start;
  const m = /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)\.(\d{3})Z/.exec(rec.name);
  return m ? Date.UTC(m[1], m[2] - 1, m[3], m[4], m[5], m[6], m[7]) / 1000 : 0;
}

export function when(rec) {
  return new Date(startOf(rec) * 1000).toLocaleString();
}

// The local day as <input type="date"> writes it.
export function isoDay(date) {
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

// A recording's thumbnail with its duration on it, as the list and the latest strip show it.
export function thumbnail(rec) {
  const thumb = document.createElement('span');
  thumb.className = 'thumb';
  if (rec.thumbnail_url) {
    const img = document.createElement('img');
    img.loading = 'lazy';
    img.decoding = 'async';
    img.alt = '';
    img.src = rec.thumbnail_url;
    img.addEventListener('error', () => thumb.classList.add('broken'), { once: true });
    thumb.append(img);
  } else {
    thumb.classList.add('broken');
  }
  const duration = document.createElement('span');
  duration.className = 'duration';
  duration.textContent = formatDuration(rec.duration);
  thumb.append(duration);
  return thumb;
}

// `path` with ?camera= (or &camera=) added when a camera is given: the server checks what belongs to it.
export function withCamera(path, camera) {
  return camera ? `${path}${path.includes('?') ? '&' : '?'}camera=${encodeURIComponent(camera)}` : path;
}

// Go to another view of the page without loading it again (a tile, a tab, the camera filter).
export function navigate(url) {
  if (url === location.pathname + location.search + location.hash) return;
  history.pushState(null, '', url);
  window.dispatchEvent(new Event('camserver-navigate'));
}

// The page's own URL of a camera (null: the overview of them all), with an optional #view.
export function pageUrl(camera, hash = '') {
  return `${withCamera('/', camera)}${hash}`;
}
