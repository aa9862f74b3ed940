// <camera-picture camera="ID">: a camera's live picture, as the camera page and every grid tile show it.
// Like go2rtc's <video-stream> it runs itself, in the spirit of a <video autoplay>: it plays while it
// is in the page, some of it on screen (IntersectionObserver: a view not shown or a tile scrolled
// away is not) and the tab visible (visibilitychange). Only while it plays does it ask the server for
// its camera's picture, so a picture nobody sees costs no bandwidth and no encoding.
//
// Two ways to play, its mode:
// - "h264": a <video> fed through Media Source Extensions (ManagedMediaSource on Safari 17+/iOS 17.1+,
//   MediaSource elsewhere) over its own WebSocket to /api/ws?src=CAMERA, go2rtc's MSE protocol. It
//   keeps to the live edge: old buffer is trimmed, and a video more than a second behind catches up.
// - "jpeg": an <img> fed with the JPEG frames the page's one WebSocket brings (connection.js watch()).
// It plays H.264 where the browser can, unless JPEG is preferred (CameraPicture.preference, kept in
// localStorage); it falls back to JPEG when no frame decodes within 3 s (no encoder running, say), on
// the server's error, or without MSE, and tries H.264 again when it next starts after a while.
//
// Read-only properties: playing; mode ("h264" or "jpeg"); frames, how many it showed since its camera
// was set; frame, the one on screen ({ camera, blob, meta, at }: blob and meta are null in H.264
// mode); naturalWidth and naturalHeight; bitrate, bits per second received over the last seconds;
// currentTime and decodedFrames, the <video>'s (0 in JPEG mode).
// Method: snapshot(), a Promise of a JPEG Blob of the picture on screen (or null).
// Events: play and pause as it starts and stops asking for frames; frame once each is on screen;
// mode when the mode changes.
import { watch } from './connection.js';
import { Picture } from './picture.js';

const PREFERENCE_KEY = 'camserver.live-mode';
const H264_TYPE = 'video/mp4; codecs="avc1.42E01E"';
// What the page may be sent; the server picks the one the camera's stream is.
const CODECS = ['avc1.640029', 'avc1.64002A', 'avc1.640033', 'avc1.4D4029', 'avc1.4D401F', 'avc1.42E01E',
  'avc1.42C01E', 'avc1.42001E'];
const FIRST_FRAME_MS = 3000; // without a decoded frame this long, H.264 gives way to JPEG
const RETRY_H264_MS = 30_000; // after a fallback, H.264 is tried again when it next starts after this
const KEEP_S = 5; // seconds of buffer kept behind the playing position
const TRIM_AFTER_S = 10;
const CHASE_S = 1; // this far behind the buffered end, it plays a little faster
const JUMP_S = 2.5; // this far behind, it jumps to the live edge
const BITRATE_WINDOW_MS = 3000;

const MediaSourceClass = window.ManagedMediaSource ?? window.MediaSource;
const canH264 = !!MediaSourceClass && MediaSourceClass.isTypeSupported?.(H264_TYPE) === true;

function storedPreference() {
  try {
    return localStorage.getItem(PREFERENCE_KEY) === 'jpeg' ? 'jpeg' : 'h264';
  } catch {
    return 'h264';
  }
}

class CameraPicture extends HTMLElement {
  static observedAttributes = ['camera'];

  // One observer for every picture on the page. A picture inside a hidden view does not intersect.
  static #observer = new IntersectionObserver((entries) => {
    for (const entry of entries) entry.target.#setInView(entry.isIntersecting);
  });

  static #all = new Set(); // the pictures in the page
  static #preference = storedPreference();

  // Whether the browser can play the H.264 live view at all.
  static get h264Supported() {
    return canH264;
  }

  // "h264" (H.264 where the browser plays it, JPEG otherwise) or "jpeg"; remembered in localStorage.
  static get preference() {
    return CameraPicture.#preference;
  }

  static set preference(value) {
    const mode = value === 'jpeg' ? 'jpeg' : 'h264';
    try {
      localStorage.setItem(PREFERENCE_KEY, mode);
    } catch {
      // private browsing without storage: it holds for this page only
    }
    if (mode === CameraPicture.#preference) return;
    CameraPicture.#preference = mode;
    for (const picture of CameraPicture.#all) picture.#restart();
  }

  #img = document.createElement('img');
  #video = document.createElement('video');
  #picture = new Picture(this.#img, (frame) => this.#shown(frame));
  #inView = false;
  #playing = false;
  #mode = null;
  #unwatch = null; // stops its camera's JPEG frames: set while it plays JPEG
  #h264 = null; // the H.264 session while it plays H.264: { ws, ms, sb, queue, ... }
  #retryH264At = 0; // epoch ms before which it plays JPEG after a fallback
  #frames = 0;
  #frame = null; // H.264 mode's frame on screen
  // The size of the last frame shown: the <img> reads 0 while the next one decodes.
  #width = 0;
  #height = 0;
  #received = []; // [epoch ms, bytes] of the last seconds, for the bitrate
  #onVisibilityChange = () => this.#update();

  constructor() {
    super();
    const v = this.#video;
    v.muted = true;
    v.defaultMuted = true;
    v.autoplay = true;
    v.playsInline = true;
    v.disableRemotePlayback = true;
    v.setAttribute('muted', '');
    v.setAttribute('playsinline', '');
    v.setAttribute('autoplay', '');
  }

  get camera() {
    return this.getAttribute('camera');
  }

  set camera(name) {
    if (name) this.setAttribute('camera', name);
    else this.removeAttribute('camera');
  }

  get playing() {
    return this.#playing;
  }

  get mode() {
    return this.#mode;
  }

  get frames() {
    return this.#frames;
  }

  get frame() {
    return this.#mode === 'h264' ? this.#frame : this.#picture.frame;
  }

  get naturalWidth() {
    return this.#width;
  }

  get naturalHeight() {
    return this.#height;
  }

  get bitrate() {
    const now = Date.now();
    while (this.#received.length && now - this.#received[0][0] > BITRATE_WINDOW_MS) this.#received.shift();
    let bytes = 0;
    for (const [, n] of this.#received) bytes += n;
    return Math.round((bytes * 8 * 1000) / BITRATE_WINDOW_MS);
  }

  get currentTime() {
    return this.#mode === 'h264' ? this.#video.currentTime : 0;
  }

  get decodedFrames() {
    if (this.#mode !== 'h264') return 0;
    return this.#video.getVideoPlaybackQuality?.().totalVideoFrames ?? this.#frames;
  }

  // A JPEG of the picture on screen: the frame itself in JPEG mode, the video drawn to a canvas in H.264.
  async snapshot() {
    if (this.#mode !== 'h264') {
      const frame = this.#picture.frame;
      if (!frame) return null;
      frame.blob ??= new Blob([frame.data], { type: 'image/jpeg' });
      return frame.blob;
    }
    const v = this.#video;
    if (!v.videoWidth || !v.videoHeight) return null;
    const canvas = document.createElement('canvas');
    canvas.width = v.videoWidth;
    canvas.height = v.videoHeight;
    canvas.getContext('2d').drawImage(v, 0, 0);
    return new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', 0.92));
  }

  connectedCallback() {
    if (!this.#img.parentNode) this.append(this.#img, this.#video);
    CameraPicture.#all.add(this);
    CameraPicture.#observer.observe(this);
    document.addEventListener('visibilitychange', this.#onVisibilityChange);
    this.#update();
  }

  disconnectedCallback() {
    CameraPicture.#all.delete(this);
    CameraPicture.#observer.unobserve(this);
    document.removeEventListener('visibilitychange', this.#onVisibilityChange);
    this.#update();
    // Moved (the grid puts its tiles in order) it is back before this runs; removed, its picture goes.
    queueMicrotask(() => {
      if (!this.isConnected) this.#reset();
    });
  }

  // Another camera: nothing of the previous one stays, neither its picture nor its frames on the way.
  attributeChangedCallback(name, previous, camera) {
    if (previous === camera) return;
    this.#stop();
    this.#reset();
    this.#retryH264At = 0;
    this.#img.alt = camera ? `Live view of camera ${camera}` : '';
    this.#video.setAttribute('aria-label', this.#img.alt);
    this.#update();
  }

  #setInView(inView) {
    this.#inView = inView;
    this.#update();
  }

  #update() {
    const play = this.isConnected && this.#inView && !document.hidden && !!this.camera;
    if (play && !this.playing) {
      this.#playing = true;
      const h264 = canH264 && CameraPicture.#preference === 'h264' && Date.now() >= this.#retryH264At;
      if (h264) this.#startH264();
      else this.#startJpeg();
      this.dispatchEvent(new Event('play'));
    } else if (!play) {
      this.#stop();
    }
  }

  // The preference changed: it plays again, the other way.
  #restart() {
    if (!this.playing) return;
    this.#retryH264At = 0;
    this.#stop();
    this.#update();
  }

  #stop() {
    if (!this.playing) return;
    this.#playing = false;
    this.#stopJpeg();
    this.#stopH264();
    this.dispatchEvent(new Event('pause'));
  }

  #setMode(mode) {
    if (this.#mode === mode) return;
    this.#mode = mode;
    this.dataset.mode = mode;
    this.#received = [];
    this.#width = this.#mode === 'h264' ? this.#video.videoWidth : this.#img.naturalWidth;
    this.#height = this.#mode === 'h264' ? this.#video.videoHeight : this.#img.naturalHeight;
    this.dispatchEvent(new Event('mode'));
  }

  #reset() {
    this.#picture.clear();
    this.#frame = null;
    this.#frames = 0;
    this.#width = this.#height = 0;
    this.#received = [];
  }

  #count(bytes) {
    this.#received.push([Date.now(), bytes]);
  }

  // JPEG: the page's WebSocket brings its camera's frames.

  #startJpeg() {
    this.#setMode('jpeg');
    this.#unwatch = watch(this.camera, (frame) => {
      this.#count(frame.data?.byteLength ?? 0);
      this.#picture.push(frame);
    });
  }

  #stopJpeg() {
    if (!this.#unwatch) return;
    this.#unwatch();
    this.#unwatch = null;
  }

  #shown(frame) {
    this.#frames += 1;
    this.#width = this.#img.naturalWidth;
    this.#height = this.#img.naturalHeight;
    this.dispatchEvent(new CustomEvent('frame', { detail: frame }));
  }

  // H.264: one WebSocket of its own, its fragments appended to a SourceBuffer of the <video>.

  #startH264() {
    this.#setMode('h264');
    const video = this.#video;
    const camera = this.camera;
    const ms = new MediaSourceClass();
    const s = { ws: null, ms, sb: null, queue: [], codec: null, url: null, startedAt: Date.now(), lastFrameAt: 0,
      lastTime: -1, lastDecoded: 0, stuckAt: -1, timer: 0, frameCallback: 0, closed: false };
    this.#h264 = s;
    if (window.ManagedMediaSource && ms instanceof window.ManagedMediaSource) {
      video.disableRemotePlayback = true;
      video.srcObject = ms;
    } else {
      s.url = URL.createObjectURL(ms);
      video.src = s.url;
    }
    ms.addEventListener('sourceopen', () => this.#addSourceBuffer(s), { once: true });

    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = (s.ws = new WebSocket(`${proto}://${location.host}/api/ws?src=${encodeURIComponent(camera)}`));
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => {
      const codecs = CODECS.filter((c) => MediaSourceClass.isTypeSupported(`video/mp4; codecs="${c}"`));
      ws.send(JSON.stringify({ type: 'mse', value: codecs.join(',') }));
    };
    ws.onmessage = (ev) => {
      if (s.closed) return;
      if (typeof ev.data !== 'string') {
        this.#count(ev.data.byteLength);
        s.queue.push(ev.data);
        this.#pump(s);
        return;
      }
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (msg?.type === 'mse' && typeof msg.value === 'string') {
        if (!s.sb) {
          s.codec = msg.value;
          this.#addSourceBuffer(s);
        } else {
          s.queue.push({ codec: msg.value }); // a new track (the camera changed size): its init follows
        }
        this.#pump(s);
      } else if (msg?.type === 'error') {
        this.#fallBack(`server: ${msg.value}`);
      }
      // "drop": the server goes on from the next key frame; the chase below finds the live edge again.
    };
    // Closed under it (the gateway restarting, or refusing it): JPEG keeps the picture going.
    ws.onclose = () => {
      if (!s.closed) this.#fallBack('the H.264 socket closed');
    };

    const onFrame = () => {
      if (s.closed) return;
      this.#decoded(s);
      s.frameCallback = video.requestVideoFrameCallback(onFrame);
    };
    if (video.requestVideoFrameCallback) s.frameCallback = video.requestVideoFrameCallback(onFrame);
    // Where there is no requestVideoFrameCallback, progress of currentTime or decoded frames counts.
    s.timer = setInterval(() => this.#watchdog(s), 250);
    video.play().catch(() => {});
  }

  #addSourceBuffer(s) {
    if (s.sb || !s.codec || s.ms.readyState !== 'open') return;
    try {
      s.sb = s.ms.addSourceBuffer(s.codec);
    } catch (err) {
      this.#fallBack(`addSourceBuffer: ${err}`);
      return;
    }
    s.sb.mode = 'segments';
    s.sb.addEventListener('updateend', () => {
      if (s.closed) return;
      this.#chase(s);
      this.#pump(s);
    });
    s.sb.addEventListener('error', () => this.#fallBack('SourceBuffer error'));
    this.#pump(s);
  }

  // Appends what waits, one at a time: a SourceBuffer takes nothing while it is updating.
  #pump(s) {
    const sb = s.sb;
    if (!sb || sb.updating || s.closed) return;
    if (this.#trim(s)) return;
    while (s.queue.length) {
      const item = s.queue.shift();
      try {
        if (item.codec) {
          if (item.codec !== s.codec) sb.changeType?.(item.codec);
          s.codec = item.codec;
          continue;
        }
        sb.appendBuffer(item);
        return;
      } catch (err) {
        if (err.name === 'QuotaExceededError') {
          s.queue.unshift(item);
          this.#trim(s, true);
          return;
        }
        this.#fallBack(`appendBuffer: ${err}`);
        return;
      }
    }
  }

  // Drops what lies well behind the playing position; true when a removal is under way.
  #trim(s, hard = false) {
    const sb = s.sb;
    const b = sb.buffered;
    if (!b.length || sb.updating) return false;
    const t = this.#video.currentTime;
    const start = b.start(0);
    const keep = hard ? 1 : KEEP_S;
    if (t - start <= (hard ? keep : TRIM_AFTER_S)) return false;
    try {
      sb.remove(start, t - keep);
      return true;
    } catch {
      return false;
    }
  }

  // Keeps the video at the live edge: into the newest range, a little faster when behind, a jump when far.
  #chase(s) {
    const b = s.sb?.buffered;
    const video = this.#video;
    if (!b?.length) return;
    const start = b.start(b.length - 1);
    const end = b.end(b.length - 1);
    const t = video.currentTime;
    const behind = end - t;
    if (t < start || t > end || behind > JUMP_S) {
      video.currentTime = Math.max(start, end - 0.2);
      video.playbackRate = 1;
    } else if (behind > CHASE_S) {
      video.playbackRate = 1.25;
    } else if (video.playbackRate !== 1 && behind < 0.4) {
      video.playbackRate = 1;
    }
    if (video.paused) video.play().catch(() => {});
  }

  #decoded(s) {
    s.lastFrameAt = Date.now();
    this.#frames += 1;
    const v = this.#video;
    this.#width = v.videoWidth;
    this.#height = v.videoHeight;
    this.#frame = { camera: this.camera, blob: null, meta: null, at: s.lastFrameAt };
    this.dispatchEvent(new CustomEvent('frame', { detail: this.#frame }));
  }

  #watchdog(s) {
    if (s.closed) return;
    const v = this.#video;
    if (!v.requestVideoFrameCallback) {
      const decoded = v.getVideoPlaybackQuality?.().totalVideoFrames ?? 0;
      if (v.currentTime !== s.lastTime || decoded !== s.lastDecoded) {
        if (s.lastTime >= 0 || decoded) this.#decoded(s);
        s.lastTime = v.currentTime;
        s.lastDecoded = decoded;
      }
    }
    if (Date.now() - (s.lastFrameAt || s.startedAt) > FIRST_FRAME_MS) {
      this.#fallBack(s.lastFrameAt ? 'no frame for 3 s' : 'no first frame within 3 s');
      return;
    }
    if (!s.sb || s.sb.updating) return;
    // Stuck with frames buffered ahead (Chromium can wait a second after an underrun): a seek restarts it.
    const b = s.sb.buffered;
    if (b.length && v.currentTime === s.stuckAt && b.end(b.length - 1) - v.currentTime > 0.4) {
      v.currentTime = b.end(b.length - 1) - 0.2;
    }
    s.stuckAt = v.currentTime;
    this.#chase(s);
  }

  #fallBack(reason) {
    if (!this.#h264) return;
    console.info(`camera ${this.camera}: H.264 live view gave way to JPEG (${reason})`);
    this.#stopH264();
    this.#retryH264At = Date.now() + RETRY_H264_MS;
    if (this.playing) this.#startJpeg();
  }

  #stopH264() {
    const s = this.#h264;
    if (!s) return;
    this.#h264 = null;
    s.closed = true;
    clearInterval(s.timer);
    if (s.frameCallback) this.#video.cancelVideoFrameCallback?.(s.frameCallback);
    s.ws.onclose = s.ws.onmessage = null;
    s.ws.close();
    const video = this.#video;
    video.pause();
    if (video.srcObject) video.srcObject = null;
    video.removeAttribute('src');
    video.load();
    if (s.url) URL.revokeObjectURL(s.url);
    this.#frame = null;
  }
}

customElements.define('camera-picture', CameraPicture);
export { CameraPicture };
