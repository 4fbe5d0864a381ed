// One session in the officer console: header, invite (link, copy, QR), live tiles with quality
// figures, own camera and microphone, the timeline as it grows, the kind's panels, and end.
import { CallClient } from './call.js';
import { $, h, show, formatTime } from './dom.js';
import { t } from './i18n.js';
import { openCamera } from './media.js';
import { drawQr } from './qr.js';
import { Tile } from './tiles.js';
import { describe } from './timeline.js';
import { workflowPanel } from './console_workflows.js';

const STATS_EVERY_MS = 1000;


export class SessionView {
  constructor({ id, api, invites, onChange }) {
    this.id = id;
    this.api = api;
    this.invites = invites;
    this.onChange = onChange;
    this.detail = null;
    this.call = null;
    this.localStream = null;
    this.tiles = new Map();
    this.selfTile = null;
    this.lastSeq = 0;
    this.statsTimer = null;
    this.closed = false;
    this.listeners = [];
    this.bindControls();
    // Test and support hook: what each tile is receiving, read from getStats.
    window.__rtc = { snapshot: () => this.snapshot(), session: this };
  }

  on(el, type, fn) {
    el.addEventListener(type, fn);
    this.listeners.push(() => el.removeEventListener(type, fn));
  }

  bindControls() {
    this.on($('end-btn'), 'click', () => this.confirmEnd());
    this.on($('start-media-btn'), 'click', () => this.startMedia());
    this.on($('mute-btn'), 'click', () => this.toggle('audio'));
    this.on($('camera-btn'), 'click', () => this.toggle('video'));
    this.on($('copy-btn'), 'click', () => this.copyInvite());
    this.on($('new-invite-btn'), 'click', () => this.newInvite());
  }

  async open() {
    this.detail = await this.api('GET', `/api/v1/sessions/${this.id}`);
    if (this.closed) return;
    this.renderHead();
    this.renderPanels();
    this.workflow = workflowPanel(this);
    this.renderInvite();
    $('stage').replaceChildren();
    $('timeline').replaceChildren();
    show($('media-error'), false);
    await this.loadEvents();
    const ended = this.detail.state === 'ended';
    show($('start-media-btn'), !ended);
    $('start-media-btn').disabled = false;
    show($('mute-btn'), false);
    show($('camera-btn'), false);
    $('end-btn').disabled = ended;
    show($('invite-panel'), !ended);
    if (!ended) {
      this.connect();
      for (const p of this.detail.participants || []) if (p.role !== 'officer') this.remoteTile(p);
    }
    this.statsTimer = setInterval(() => this.refreshStats(), STATS_EVERY_MS);
  }

  renderHead() {
    const d = this.detail;
    $('session-kind').textContent = t(`kind_${d.kind}`);
    $('session-title').textContent = d.title || t(`kind_${d.kind}`);
    const badge = $('session-state');
    badge.className = `badge badge-${d.state}`;
    badge.textContent = t(`state_${d.state}`);
  }

  renderPanels() {
    const d = this.detail;
    for (const panel of document.querySelectorAll('.panel[data-kind]')) show(panel, panel.dataset.kind === d.kind);
    if (d.kind === 'inspection') {
      $('checklist').replaceChildren(...(d.items || []).map((item) => h('li', {
        class: `check-item${item.seen ? ' seen' : ''}`, dataset: { sku: item.sku },
      },
      h('span', { class: 'check-mark', 'aria-hidden': 'true', text: item.seen ? '✓' : '' }),
      h('span', { class: 'check-body' },
        h('strong', { text: item.sku }),
        item.description ? h('span', { class: 'muted', text: ` ${item.description}` }) : null,
        item.expected_qty !== null && item.expected_qty !== undefined ? h('span', { class: 'muted', text: ` ×${item.expected_qty}` }) : null),
      h('span', { class: 'visually-hidden', text: item.seen ? t('seen') : t('not_seen') }))));
    } else {
      $('signing-steps').replaceChildren(...(d.steps || []).map((s) => h('li', {
        class: `step step-${s.status}`, dataset: { step: s.step },
      }, h('span', { text: t(`step_${s.step}`) }), ' ',
      h('span', { class: 'muted small', text: t(s.status === 'pending' ? 'step_pending' : 'step_done') }))));
    }
  }

  renderInvite() {
    const invite = this.invites.get(this.id);
    show($('invite-body'), Boolean(invite));
    $('invite-hint').textContent = invite ? t('invite_hint') : t('invite_none');
    $('copy-status').textContent = '';
    if (!invite) return;
    $('invite-url').value = invite.url;
    drawQr($('invite-qr'), invite.url);
  }

  async newInvite() {
    const role = this.detail.kind === 'signing' ? 'signer' : 'staff';
    try {
      const invite = await this.api('POST', `/api/v1/sessions/${this.id}/invites`, { role });
      this.invites.set(this.id, { role, ...invite });
      this.renderInvite();
    } catch (err) {
      this.problem(err.message);
    }
  }

  async copyInvite() {
    const input = $('invite-url');
    try {
      await navigator.clipboard.writeText(input.value);
      $('copy-status').textContent = t('copied');
    } catch {
      input.select();
      $('copy-status').textContent = t('copy_failed');
    }
  }

  async loadEvents() {
    const events = await this.api('GET', `/api/v1/sessions/${this.id}/events?after=${this.lastSeq}`);
    for (const e of events) this.addEvent(e);
  }

  addEvent(e) {
    if (!e || typeof e.seq !== 'number' || e.seq <= this.lastSeq) return;
    this.lastSeq = e.seq;
    const { title, details } = describe(e, (id) => this.nameOf(id));
    const item = h('li', { class: 'timeline-item', dataset: { type: e.type, seq: String(e.seq) } },
      h('time', { datetime: e.ts, text: formatTime(e.ts) }),
      h('span', { class: 'timeline-title' }, title, ' ', h('code', { class: 'timeline-type', text: e.type })),
      details ? h('span', { class: 'timeline-data muted small', text: details }) : null);
    const list = $('timeline');
    list.prepend(item);
    if (e.data && typeof e.data.to === 'string') this.setState(e.data.to);
    if (this.workflow) this.workflow.onEvent(e);
  }

  nameOf(participantId) {
    if (!participantId) return '';
    const p = (this.call && this.call.participants.get(participantId))
      || (this.detail.participants || []).find((x) => x.id === participantId);
    if (!p) return '';
    if (this.call && this.call.me && p.id === this.call.me.id) return t('you');
    return p.name || t(`role_${p.role}`);
  }

  setState(state) {
    if (!this.detail || this.detail.state === state) return;
    this.detail.state = state;
    this.renderHead();
    if (state === 'ended') this.ended();
    if (this.workflow) this.workflow.onState(state);
    this.onChange();
  }

  connect() {
    const call = new CallClient({ sessionId: this.id, token: sessionStorageToken() });
    this.call = call;
    call.addEventListener('state', (e) => {
      $('session-conn').textContent = e.detail === 'closed' ? '' : t(`conn_${e.detail}`);
      if (e.detail === 'connected') this.loadEvents().catch(() => {});
    });
    call.addEventListener('welcome', (e) => {
      for (const p of e.detail.participants) if (p.id !== call.me.id) this.remoteTile(p);
      if (this.selfTile) this.selfTile.id = call.me.id;
    });
    call.addEventListener('presence', (e) => { if (e.detail.id !== call.me.id) this.remoteTile(e.detail); });
    call.addEventListener('remote', (e) => {
      const p = call.participants.get(e.detail.participantId) || { id: e.detail.participantId };
      this.remoteTile(p).attach(e.detail.stream, e.detail.pc);
    });
    call.addEventListener('remote-removed', (e) => {
      const tile = this.tiles.get(e.detail.participantId);
      if (tile) tile.detach();
    });
    call.addEventListener('publisher-state', () => {
      if (this.selfTile && call.publisher) this.selfTile.pc = call.publisher.pc;
    });
    call.addEventListener('event', (e) => this.addEvent(e.detail));
    call.addEventListener('ended', () => this.setState('ended'));
    call.addEventListener('problem', (e) => this.problem(e.detail));
    call.addEventListener('fatal', (e) => {
      if (e.detail.code === 'session_ended') this.setState('ended');
      else this.problem(`${e.detail.code}: ${e.detail.message || ''}`);
    });
    call.start();
  }

  remoteTile(p) {
    let tile = this.tiles.get(p.id);
    if (!tile) {
      tile = new Tile({ id: p.id, label: p.name || (p.role ? t(`role_${p.role}`) : p.id), role: p.name ? p.role : null });
      this.tiles.set(p.id, tile);
      $('stage').append(tile.el);
    }
    if (p.name) {
      tile.nameEl.textContent = p.name;
      const roleText = p.role ? t(`role_${p.role}`) : '';
      tile.roleEl.textContent = roleText === p.name ? '' : roleText;
    }
    if (p.online !== undefined) {
      tile.el.classList.toggle('offline', !p.online);
      tile.setStatus(p.online ? '' : t('offline'));
      if (!p.online) tile.placeholder.textContent = t('waiting_participant');
    }
    return tile;
  }

  async startMedia() {
    const button = $('start-media-btn');
    button.disabled = true;
    show($('media-error'), false);
    try {
      this.localStream = await openCamera({ facing: 'user' });
    } catch (err) {
      button.disabled = false;
      this.problem(`${t(`err_${err.kind || 'unknown'}_title`)}. ${t(`err_${err.kind || 'unknown'}_body`, { name: err.errorName || err.name })}`);
      return;
    }
    if (this.closed) {
      for (const track of this.localStream.getTracks()) track.stop();
      return;
    }
    this.selfTile = new Tile({ id: this.call && this.call.me ? this.call.me.id : 'self', label: t('you'), role: 'officer', self: true });
    $('stage').prepend(this.selfTile.el);
    this.selfTile.attach(this.localStream, null);
    show(button, false);
    show($('mute-btn'), true);
    show($('camera-btn'), true);
    if (this.call) this.call.setLocalStream(this.localStream);
  }

  toggle(kind) {
    if (!this.localStream) return;
    const track = kind === 'audio' ? this.localStream.getAudioTracks()[0] : this.localStream.getVideoTracks()[0];
    if (!track) return;
    track.enabled = !track.enabled;
    const button = kind === 'audio' ? $('mute-btn') : $('camera-btn');
    button.setAttribute('aria-pressed', String(!track.enabled));
    if (kind === 'audio') button.textContent = track.enabled ? t('mute') : t('unmute');
    else {
      button.textContent = track.enabled ? t('camera_off') : t('camera_on');
      this.selfTile.el.classList.toggle('camera-off', !track.enabled);
    }
  }

  async refreshStats() {
    if (this.selfTile && this.call && this.call.publisher) this.selfTile.pc = this.call.publisher.pc;
    const all = [...this.tiles.values()];
    if (this.selfTile) all.push(this.selfTile);
    await Promise.all(all.map((tile) => tile.refreshStats().catch(() => null)));
  }

  async snapshot() {
    const out = [];
    for (const tile of this.tiles.values()) {
      const s = tile.pc ? await tile.refreshStats() : null;
      out.push({
        participantId: tile.id,
        videoWidth: tile.video.videoWidth,
        framesDecoded: s ? s.framesDecoded : 0,
        audioBytes: s ? s.audioBytes : 0,
        firstFrameAt: tile.firstFrameAt,
        online: !tile.el.classList.contains('offline'),
      });
    }
    return out;
  }

  confirmEnd() {
    const dialog = $('confirm-dialog');
    dialog.returnValue = '';
    const onClose = async () => {
      dialog.removeEventListener('close', onClose);
      if (dialog.returnValue !== 'ok') return;
      try {
        const result = await this.api('POST', `/api/v1/sessions/${this.id}/end`);
        this.setState(result.state);
        await this.loadEvents();
      } catch (err) {
        this.problem(err.message);
      }
    };
    dialog.addEventListener('close', onClose);
    dialog.showModal();
  }

  ended() {
    $('end-btn').disabled = true;
    show($('start-media-btn'), false);
    show($('mute-btn'), false);
    show($('camera-btn'), false);
    show($('invite-panel'), false);
    if (this.call) this.call.stop();
    this.stopLocal();
    for (const tile of this.tiles.values()) tile.detach();
  }

  problem(message) {
    const el = $('media-error');
    el.textContent = message;
    show(el, true);
  }

  stopLocal() {
    if (this.localStream) for (const track of this.localStream.getTracks()) track.stop();
    this.localStream = null;
    if (this.selfTile) this.selfTile.remove();
    this.selfTile = null;
  }

  close() {
    this.closed = true;
    if (this.workflow) this.workflow.close();
    clearInterval(this.statsTimer);
    for (const off of this.listeners) off();
    if (this.call) this.call.stop();
    this.call = null;
    this.stopLocal();
    for (const tile of this.tiles.values()) tile.remove();
    this.tiles.clear();
  }
}

function sessionStorageToken() {
  return sessionStorage.getItem('rtc.officer.token');
}
