// <camera-picture camera="ID">: a camera's live picture, as the camera page and every grid tile show it.
// Like go2rtc's <video-stream> it runs itself, in the spirit of a <video autoplay>: it plays while it
// is in the page, some of it on screen (IntersectionObserver: a view not shown or a tile scrolled
// away is not) and the tab visible (visibilitychange). Only while it plays does the page's one
// WebSocket ask the server for its camera's frames, so a picture nobody sees costs no bandwidth.
//
// Read-only properties: playing; frames, how many it showed since its camera was set; frame, the one
// on screen ({ camera, blob, meta, at }: what a snapshot saves); naturalWidth and naturalHeight.
// Events: play and pause as it starts and stops asking for frames; frame once each is on screen.
import { watch } from './connection.js';
import { Picture } from './picture.js';

class CameraPicture extends HTMLElement {
  static observedAttributes = ['camera'];

  // One observer for every picture on the page. A picture inside a hidden view does not intersect.
  static #observer = new IntersectionObserver((entries) => {
    for (const entry of entries) entry.target.#setInView(entry.isIntersecting);
  });

  #img = document.createElement('img');
  #picture = new Picture(this.#img, (frame) => this.#shown(frame));
  #inView = false;
  #unwatch = null; // stops its camera's frames: set while it plays
  #frames = 0;
  // The size of the last frame shown: the <img> reads 0 while the next one decodes.
  #width = 0;
  #height = 0;
  #onVisibilityChange = () => this.#update();

  get camera() {
    return this.getAttribute('camera');
  }

  set camera(name) {
    if (name) this.setAttribute('camera', name);
    else this.removeAttribute('camera');
  }

  get playing() {
    return this.#unwatch !== null;
  }

  get frames() {
    return this.#frames;
  }

  get frame() {
    return this.#picture.frame;
  }

  get naturalWidth() {
    return this.#width;
  }

  get naturalHeight() {
    return this.#height;
  }

  connectedCallback() {
    if (!this.#img.parentNode) this.append(this.#img);
    CameraPicture.#observer.observe(this);
    document.addEventListener('visibilitychange', this.#onVisibilityChange);
    this.#update();
  }

  disconnectedCallback() {
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
    this.#img.alt = camera ? `Live view of camera ${camera}` : '';
    this.#update();
  }

  #setInView(inView) {
    this.#inView = inView;
    this.#update();
  }

  #update() {
    const play = this.isConnected && this.#inView && !document.hidden && !!this.camera;
    if (play && !this.playing) {
      this.#unwatch = watch(this.camera, (frame) => this.#picture.push(frame));
      this.dispatchEvent(new Event('play'));
    } else if (!play) {
      this.#stop();
    }
  }

  #stop() {
    if (!this.playing) return;
    this.#unwatch();
    this.#unwatch = null;
    this.dispatchEvent(new Event('pause'));
  }

  #reset() {
    this.#picture.clear();
    this.#frames = 0;
    this.#width = this.#height = 0;
  }

  #shown(frame) {
    this.#frames += 1;
    this.#width = this.#img.naturalWidth;
    this.#height = this.#img.naturalHeight;
    this.dispatchEvent(new CustomEvent('frame', { detail: frame }));
  }
}

customElements.define('camera-picture', CameraPicture);
