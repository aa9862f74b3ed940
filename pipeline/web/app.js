// camserver's page: the live view and the recordings, two views over one WebSocket.
import { connect } from './connection.js';
import { initLatest, setLatestVisible } from './latest.js';
import { initLive, setLiveVisible } from './live.js';
import { closePlayer, initPlayer, openPlayerByName, PLAYER_HASH } from './player.js';
import { initRecordings, setRecordingsVisible } from './recordings.js';
import { cs } from './state.js';
import { $, api, toast, toLogin } from './ui.js';

const VIEWS = ['live', 'recordings'];
const scrollTops = { live: 0, recordings: 0 };

function setView(view) {
  if (cs.view === view && document.body.dataset.view === view) return;
  if (document.body.dataset.view) scrollTops[cs.view] = window.scrollY;
  cs.view = view;
  document.body.dataset.view = view;
  for (const name of VIEWS) {
    const on = name === view;
    $(`view-${name}`).hidden = !on;
    const tab = $(`tab-${name}`);
    if (on) tab.setAttribute('aria-current', 'page');
    else tab.removeAttribute('aria-current');
  }
  document.title = view === 'live' ? 'camserver — live' : 'camserver — recordings';
  setLiveVisible(view === 'live');
  setLatestVisible(view === 'live');
  setRecordingsVisible(view === 'recordings');
  window.scrollTo(0, scrollTops[view]);
}

function route() {
  const player = PLAYER_HASH.exec(location.hash);
  setView(player || location.hash === '#recordings' ? 'recordings' : 'live');
  if (player) openPlayerByName(decodeURIComponent(player[1]));
  else closePlayer();
}

// With a login in use, the header offers to log out (a shared tablet on the wall, a borrowed phone).
async function initSession() {
  const session = await api('/api/session').catch(() => null);
  if (!session?.login) return;
  const button = $('logout-button');
  button.querySelector('.label').textContent = `Log out ${session.user ?? ''}`.trim();
  button.hidden = false;
  button.addEventListener('click', async () => {
    try {
      await api('/logout', { method: 'POST' });
      toLogin();
    } catch (err) {
      toast(err.message);
    }
  });
}

initLive();
initLatest();
initPlayer();
initRecordings();
window.addEventListener('hashchange', route);
window.addEventListener('popstate', route);
route();
connect();
initSession();
