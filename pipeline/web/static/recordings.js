// The recordings view: newest first, a page at a time as the list scrolls, filter by day and by
// camera, new recordings of every camera added live from the recorder's events.
import { cameras, on } from './connection.js';
import { listChanged, openPlayer, playerSource } from './player.js';
import {
  $, api, formatDuration, formatSize, isoDay, navigate, pageUrl, setText, startOf, thumbnail, toast, when, withCamera,
} from './ui.js';

const PAGE = 24;

const list = $('recordings-list');
const empty = $('empty-recordings');
const more = $('recordings-more');
const dayInput = $('day-filter');
const dayClear = $('day-filter-clear');
const disk = $('recordings-disk');
const newCount = $('new-count');
const cameraBox = $('camera-filter-box');
const cameraSelect = $('camera-filter');

let items = []; // sidecars in list order, newest first
const cards = new Map(); // name -> <li>
let cursor = null; // `next` of the last page: pass as `before`
let done = false;
let failed = false;
let loading = null; // the page being fetched
let generation = 0; // bumped by every reset; answers for an older list are dropped
let filter = null; // { from, to } in Unix seconds: one local day
let camera = null; // the camera whose recordings are listed; null: every camera's
let started = false; // the first page was asked for
let active = false;
let unseen = 0;

function card(rec) {
  const li = document.createElement('li');
  li.className = 'rec';
  li.dataset.name = rec.name;
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'rec-open';
  button.setAttribute('aria-label', `Play the recording of ${when(rec)}, ${formatDuration(rec.duration)}`);
  const thumb = thumbnail(rec);
  if (rec.cut_short) {
    const cut = document.createElement('span');
    cut.className = 'cut-short';
    cut.textContent = 'cut short';
    cut.title = 'The recording stopped before the movement did (a restart or a crash)';
    thumb.append(cut);
  }
  const date = document.createElement('span');
  date.className = 'rec-when';
  date.textContent = when(rec);
  const meta = document.createElement('span');
  meta.className = 'rec-meta';
  meta.textContent = [rec.size ? formatSize(rec.size) : null, rec.camera].filter(Boolean).join(' · ');
  button.append(thumb, date, meta);
  button.addEventListener('click', () => openPlayer(rec));
  li.append(button);
  return li;
}

function append(recs) {
  const fragment = document.createDocumentFragment();
  for (const rec of recs) {
    if (cards.has(rec.name)) continue;
    const li = card(rec);
    cards.set(rec.name, li);
    items.push(rec);
    fragment.append(li);
  }
  list.append(fragment);
  listChanged();
}

// A recording saved while the page is open goes where its name sorts, normally the top.
function insert(rec) {
  if (cards.has(rec.name) || (camera && rec.camera !== camera)) return false;
  if (filter && !(startOf(rec) >= filter.from && startOf(rec) < filter.to)) return false;
  let at = items.findIndex((r) => r.name < rec.name);
  if (at === -1) {
    if (!done) return false; // older than everything loaded: a later page brings it
    at = items.length;
  }
  const li = card(rec);
  li.classList.add('fresh');
  cards.set(rec.name, li);
  list.insertBefore(li, cards.get(items[at]?.name) ?? null);
  items.splice(at, 0, rec);
  listChanged();
  render();
  return true;
}

export function removeRecording(name) {
  const li = cards.get(name);
  if (!li) return;
  cards.delete(name);
  items = items.filter((r) => r.name !== name);
  li.remove();
  listChanged();
  render();
}

function emptyText() {
  if (camera && filter) return `No recordings of ${camera} on this day.`;
  if (camera) return `No recordings of ${camera} yet — movement in front of it starts one.`;
  if (filter) return 'No recordings on this day.';
  return 'No recordings yet — movement in front of the camera starts one.';
}

function render() {
  const nothing = done && !failed && items.length === 0;
  empty.hidden = !nothing;
  setText(empty, emptyText());
  more.dataset.state = failed ? 'failed' : loading ? 'loading' : done ? 'done' : 'idle';
  dayClear.hidden = !filter;
}

function query(before) {
  const params = new URLSearchParams({ limit: String(PAGE) });
  if (before) params.set('before', before);
  if (filter) {
    params.set('from', String(filter.from));
    params.set('to', String(filter.to));
  }
  if (camera) params.set('camera', camera);
  return `/api/recordings?${params}`;
}

function loadMore() {
  if (loading || done || failed) return loading;
  const gen = generation;
  loading = api(query(cursor))
    .then((body) => {
      if (gen !== generation) return;
      append(Array.isArray(body?.recordings) ? body.recordings : []);
      cursor = body?.next ?? null;
      done = cursor == null;
    })
    .catch((err) => {
      if (gen !== generation) return;
      // A camera the server knows neither live nor from a recording has none: its first one comes as an event.
      if (camera && err.status === 404) {
        done = true;
        return;
      }
      failed = true;
      toast(`Recordings could not be loaded: ${err.message}`);
    })
    .finally(() => {
      if (gen !== generation) return;
      loading = null;
      render();
      recheck();
    });
  render();
  return loading;
}

// Observing afresh reports the sentinel's current position: a page that did not fill the screen
// leaves it in view, and an observer that keeps seeing it would never report again.
const observer = new IntersectionObserver(
  (entries) => {
    if (active && entries.some((e) => e.isIntersecting)) loadMore();
  },
  { rootMargin: '0px 0px 600px 0px' },
);

function recheck() {
  observer.unobserve(more);
  observer.observe(more);
}

function reset() {
  generation += 1;
  items = [];
  cards.clear();
  list.replaceChildren();
  cursor = null;
  done = false;
  failed = false;
  loading = null;
  started = true;
  listChanged();
  render();
  recheck();
}

// <input type="date"> gives YYYY-MM-DD; the day runs from local midnight to the next one (23 or 25 h
// around a daylight saving change).
function dayBounds(value) {
  const m = /^(\d{4})-(\d\d)-(\d\d)$/.exec(value);
  if (!m) return null;
  const [y, mo, d] = [Number(m[1]), Number(m[2]) - 1, Number(m[3])];
  return { from: new Date(y, mo, d).getTime() / 1000, to: new Date(y, mo, d + 1).getTime() / 1000 };
}

function setFilter(value) {
  filter = dayBounds(value);
  window.scrollTo(0, 0);
  reset();
}

async function refreshDisk() {
  try {
    const status = await api('/api/status');
    const d = status?.disk;
    if (!d) return;
    setText(disk, `${formatSize(d.recordings_bytes)} used · ${formatSize(d.free_bytes)} free`);
    disk.title = `Recordings take ${formatSize(d.recordings_bytes)}; the disk has ${formatSize(d.free_bytes)} free ` +
      `of ${formatSize(d.total_bytes)}`;
  } catch {
    // the header line is a nicety; the list reports real errors
  }
}

async function onSaved(event) {
  if (camera && event.camera !== camera) return;
  if (!active) {
    unseen += 1;
    newCount.hidden = false;
    setText(newCount, String(unseen));
  }
  if (!started) return;
  let rec;
  try {
    rec = await api(withCamera(`/api/recordings/${encodeURIComponent(event.name)}`, camera));
  } catch (err) {
    if (err.status !== 404) toast(`The new recording could not be loaded: ${err.message}`);
    return;
  }
  // A page asked for before the recording existed must not hide it: insert once it is in.
  if (loading) await loading;
  insert(rec);
  if (active) refreshDisk();
}

// Recordings saved while the socket was down: the first page tells, without disturbing the rest.
async function catchUp() {
  if (!started || loading) return;
  const gen = generation;
  try {
    const body = await api(query(null));
    if (gen === generation) for (const rec of body?.recordings ?? []) insert(rec);
  } catch {
    // the next scroll or reconnect tries again
  }
}

// The camera filter offers every camera the page knows, and the one asked for even if it does not know it.
function updateCameras() {
  const names = [...new Set([...cameras(), ...(camera ? [camera] : [])])].sort();
  const wanted = ['', ...names];
  const have = [...cameraSelect.options].map((o) => o.value);
  if (wanted.join('\n') !== have.join('\n')) {
    cameraSelect.replaceChildren(...wanted.map((name) => new Option(name || 'All cameras', name)));
  }
  cameraSelect.value = camera ?? '';
  cameraBox.hidden = names.length < 2 && !camera;
}

// The recordings of one camera (its page) or of all (null); the list starts again when it changes.
export function setRecordingsCamera(name) {
  updateCameras();
  if (name === camera) return;
  camera = name;
  unseen = 0;
  newCount.hidden = true;
  updateCameras();
  if (started) {
    window.scrollTo(0, 0);
    reset();
  }
}

export function setRecordingsVisible(on) {
  active = on;
  if (!on) return;
  unseen = 0;
  newCount.hidden = true;
  if (!started) reset();
  else recheck();
  refreshDisk();
}

export function initRecordings() {
  playerSource({
    items: () => items,
    hasMore: () => !done && !failed,
    loadMore: () => loadMore() ?? Promise.resolve(),
    remove: removeRecording,
    camera: () => camera,
  });
  on('event', (event) => {
    if (event.type === 'recording_saved' && typeof event.name === 'string') onSaved(event);
  });
  on('open', (opens) => {
    if (opens > 1) catchUp();
  });
  on('cameras', (changed) => {
    if (changed) updateCameras();
  });
  cameraSelect.addEventListener('change', () => navigate(pageUrl(cameraSelect.value || null, '#recordings')));
  dayInput.max = isoDay(new Date());
  dayInput.addEventListener('change', () => setFilter(dayInput.value));
  dayClear.addEventListener('click', () => {
    dayInput.value = '';
    setFilter('');
    dayInput.focus();
  });
  more.querySelector('button').addEventListener('click', () => {
    failed = false;
    loadMore();
  });
  observer.observe(more);
  render();
}
