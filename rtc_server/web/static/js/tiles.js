// Video tiles with a connection-quality readout (round trip, loss, bitrate, frame rate).
import { h } from './dom.js';
import { t } from './i18n.js';
import { playWithSound } from './media.js';
import { sampleStats } from './rtc.js';

function fmt(value, digits, unit) {
  return value === null || value === undefined || Number.isNaN(value) ? '–' : `${value.toFixed(digits)}${unit}`;
}

export class Tile {
  constructor({ id, label, role, self = false }) {
    this.id = id;
    this.self = self;
    this.pc = null;
    this.direction = self ? 'out' : 'in';
    this.prev = null;
    this.firstFrameAt = null;
    this.video = h('video', { autoplay: true, playsinline: true, class: 'tile-video' });
    if (self) this.video.muted = true;
    this.nameEl = h('span', { class: 'tile-name', text: label });
    const roleText = role ? t(`role_${role}`) : '';
    this.roleEl = h('span', { class: 'tile-role', text: roleText === label ? '' : roleText });
    this.stateEl = h('span', { class: 'tile-state' });
    this.placeholder = h('div', { class: 'tile-placeholder', text: t('no_video') });
    this.figures = {
      rtt: h('dd', { text: '–' }), loss: h('dd', { text: '–' }),
      bitrate: h('dd', { text: '–' }), fps: h('dd', { text: '–' }),
    };
    const stats = h('dl', { class: 'tile-stats', 'aria-label': 'Connection quality' },
      ...['rtt', 'loss', 'bitrate', 'fps'].flatMap((k) => [h('dt', { text: t(k) }), this.figures[k]]));
    // Shown when the browser blocked sound until the user interacts with the page.
    this.soundButton = h('button', {
      type: 'button', class: 'btn btn-primary btn-small tile-sound', text: t('tap_for_sound'), hidden: true,
      onclick: () => playWithSound(this.video).then((sound) => { this.soundButton.hidden = sound; }),
    });
    this.el = h('figure', { class: `tile${self ? ' tile-self' : ''}`, dataset: { participantId: id } },
      this.video, this.placeholder, this.soundButton,
      h('figcaption', { class: 'tile-caption' }, h('span', {}, this.nameEl, ' ', this.roleEl), this.stateEl),
      stats);
    this.video.addEventListener('loadeddata', () => this.el.classList.add('has-video'));
  }

  setStatus(text) {
    this.stateEl.textContent = text || '';
  }

  attach(stream, pc) {
    this.pc = pc || this.pc;
    this.prev = null;
    if (this.video.srcObject !== stream) {
      this.video.srcObject = stream;
      this.firstFrameAt = null;
      this.watchFirstFrame();
    }
    if (this.self) this.video.play().catch(() => {});
    else playWithSound(this.video).then((sound) => { this.soundButton.hidden = sound; });
  }

  watchFirstFrame() {
    if (!('requestVideoFrameCallback' in HTMLVideoElement.prototype)) return;
    const video = this.video;
    const stream = video.srcObject;
    video.requestVideoFrameCallback(() => {
      if (video.srcObject === stream) this.firstFrameAt = Date.now();
    });
  }

  detach() {
    this.video.srcObject = null;
    this.pc = null;
    this.prev = null;
    this.el.classList.remove('has-video');
    for (const dd of Object.values(this.figures)) dd.textContent = '–';
  }

  async refreshStats() {
    if (!this.pc || this.pc.connectionState === 'closed') return null;
    const s = await sampleStats(this.pc, this.direction, this.prev);
    this.prev = s;
    this.figures.rtt.textContent = fmt(s.rttMs, 0, ' ms');
    this.figures.loss.textContent = fmt(s.lossPct, 1, ' %');
    this.figures.bitrate.textContent = s.kbps === null ? '–' : (s.kbps >= 1000 ? `${(s.kbps / 1000).toFixed(2)} Mb/s` : `${s.kbps.toFixed(0)} kb/s`);
    this.figures.fps.textContent = fmt(s.fps, 0, '');
    const poor = (s.lossPct !== null && s.lossPct > 5) || (s.rttMs !== null && s.rttMs > 400);
    this.el.classList.toggle('quality-poor', poor);
    return s;
  }

  remove() {
    this.detach();
    this.el.remove();
  }
}
