// "Latest recordings" of the live view's camera under its picture, where a phone held upright has room to spare.
import { on } from './connection.js';
import { $, api, setText, startOf, thumbnail, withCamera } from './ui.js';

const COUNT = 8;
const section = $('latest');
const list = $('latest-list');
const none = $('latest-none');
const wanted = matchMedia('(max-width: 600px) and (orientation: portrait)');

let visible = false;
let stale = true;
let loading = false;
let camera = null; // the live view's camera; null: every camera's recordings

function shortWhen(rec) {
  return new Date(startOf(rec) * 1000).toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'short' });
}

function item(rec) {
  const li = document.createElement('li');
  li.dataset.name = rec.name;
  const a = document.createElement('a');
  a.href = `#recordings/${encodeURIComponent(rec.name)}`;
  a.title = new Date(startOf(rec) * 1000).toLocaleString();
  const thumb = thumbnail(rec);
  const when = document.createElement('span');
  when.className = 'latest-when';
  when.textContent = shortWhen(rec);
  a.append(thumb, when);
  li.append(a);
  return li;
}

async function refresh() {
  if (loading) return;
  loading = true;
  stale = false;
  const asked = camera;
  try {
    const body = await api(withCamera(`/api/recordings?limit=${COUNT}`, asked));
    if (asked !== camera) return;
    const recs = body?.recordings ?? [];
    list.replaceChildren(...recs.map(item));
    none.hidden = recs.length > 0;
  } catch (err) {
    if (asked === camera && err.status === 404) {
      list.replaceChildren(); // a camera not known yet has no recordings
      none.hidden = false;
    } else {
      stale = true; // the recordings view reports errors; this strip just tries again later
    }
  } finally {
    loading = false;
    if (asked !== camera) sync(); // the camera changed while this one's list loaded
  }
}

function sync() {
  section.hidden = !(visible && wanted.matches);
  if (!section.hidden && stale) refresh();
}

// Coming back to the live view refreshes it: recordings may have been deleted meanwhile.
export function setLatestVisible(on) {
  if (on && !visible) stale = true;
  visible = on;
  sync();
}

export function setLatestCamera(name) {
  if (name === camera) return;
  camera = name;
  list.replaceChildren();
  stale = true;
  sync();
}

export function initLatest() {
  setText(none, 'No recordings yet — movement in front of the camera starts one.');
  wanted.addEventListener('change', sync);
  on('event', (event) => {
    if (event.type !== 'recording_saved' || (camera && event.camera !== camera)) return;
    stale = true;
    sync();
  });
  sync();
}
