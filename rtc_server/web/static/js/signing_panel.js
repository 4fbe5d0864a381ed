// Officer console, signing session: the identity / consent / signature steps as they happen, and
// the actions each state allows (confirm or reject identity, sign, download the signed PDF and the
// evidence zip). Steps come from the session detail, refreshed whenever a signing event or a state
// change arrives over the socket.
import { download } from './blobs.js';
import { $, h, formatTime } from './dom.js';
import { t } from './i18n.js';
import './i18n_workflows.js';

const STATUSES = new Set(['pending', 'confirmed', 'rejected', 'given', 'signed', 'done', 'failed']);

export class SigningPanel {
  constructor(view, token) {
    this.view = view;
    this.token = token;
    this.busy = false;
    this.rejecting = false;
    this.message = null;
    this.refreshTimer = null;
    this.closed = false;
    this.render();
  }

  get id() { return this.view.id; }
  get state() { return this.view.detail.state; }
  get steps() { return this.view.detail.steps || []; }

  step(name) { return this.steps.find((s) => s.step === name) || { step: name, status: 'pending' }; }

  onEvent(e) {
    if (e.type.startsWith('signing.') || (e.data && typeof e.data.to === 'string')) this.scheduleRefresh();
  }

  onState() {
    this.render();
    this.scheduleRefresh();
  }

  // Past events replayed on opening arrive in a burst: one detail fetch for all of them.
  scheduleRefresh() {
    if (this.refreshTimer || this.closed) return;
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = null;
      this.refresh().catch(() => {});
    }, 150);
  }

  async refresh() {
    const detail = await this.view.api('GET', `/api/v1/sessions/${this.id}`);
    if (this.closed) return;
    this.view.detail.steps = detail.steps;
    if (detail.state !== this.view.detail.state) this.view.setState(detail.state);
    this.render();
  }

  render() {
    $('signing-steps').replaceChildren(...this.steps.map((s) => this.stepItem(s)));
    // A live event may re-render while the officer types a note: keep the caret where it was.
    const typing = document.activeElement && document.activeElement.id === 'identity-notes'
      ? [document.activeElement.selectionStart, document.activeElement.selectionEnd] : null;
    $('signing-actions').replaceChildren(...this.actions());
    const notes = document.getElementById('identity-notes');
    if (typing && notes) {
      notes.focus();
      notes.setSelectionRange(typing[0], typing[1]);
    }
  }

  stepItem(s) {
    const status = STATUSES.has(s.status) ? s.status : 'done';
    const facts = [];
    if (s.at) facts.push(t('wf_at', { time: formatTime(s.at) }));
    if (typeof s.media_time_s === 'number') facts.push(t('wf_media_time', { t: `${s.media_time_s.toFixed(1)} s` }));
    return h('li', { class: `step step-${status}`, dataset: { step: s.step, status: s.status } },
      h('span', { class: 'step-name', text: t(`wf_${s.step}`) }), ' ',
      h('span', { class: `wf-status wf-status-${status}`, text: t(`wf_status_${status}`) }),
      facts.length ? h('span', { class: 'muted small step-facts', text: facts.join(' · ') }) : null,
      s.notes ? h('span', { class: 'small step-notes', text: s.notes }) : null);
  }

  actions() {
    const state = this.state;
    const out = [];
    const identity = this.step('identity').status;
    const signed = ['signed', 'done'].includes(this.step('signature').status) || state === 'signed';
    if (state === 'waiting' || state === 'live') out.push(...this.identityControls());
    if (state === 'identity_confirmed' || state === 'consented') {
      out.push(h('button', {
        type: 'button', class: 'btn btn-primary', id: 'sign-btn', text: t('wf_sign_document'),
        disabled: state !== 'consented' || this.busy, onclick: () => this.sign(),
      }));
      if (state !== 'consented') out.push(h('p', { class: 'muted small', text: t('wf_wait_consent') }));
    }
    if (identity === 'rejected') out.push(h('p', { class: 'notice notice-error small', text: t('wf_identity_rejected') }));
    if (signed) {
      out.push(h('button', {
        type: 'button', class: 'btn btn-secondary', id: 'download-signed-btn', text: t('wf_download_signed'),
        onclick: (ev) => this.fetch(ev.currentTarget, `/api/v1/signings/${this.id}/document`, `signed-${this.id}.pdf`),
      }));
    }
    if (state === 'ended') {
      out.push(h('button', {
        type: 'button', class: 'btn btn-secondary', id: 'download-evidence-btn', text: t('wf_download_evidence'),
        onclick: (ev) => this.fetch(ev.currentTarget, `/api/v1/sessions/${this.id}/evidence`, `evidence-${this.id}.zip`),
      }));
    } else if (signed) {
      out.push(h('p', { class: 'muted small', text: t('wf_evidence_after_end') }));
    }
    const msg = h('p', { id: 'signing-message', class: 'small', role: 'status' });
    if (this.message) {
      msg.textContent = this.message.text;
      msg.className = `small notice ${this.message.error ? 'notice-error' : 'notice-ok'}`;
    } else {
      msg.hidden = true;
    }
    out.push(msg);
    return out;
  }

  identityControls() {
    // Until the signer joins, the state machine refuses both decisions: say why instead.
    const waiting = this.state === 'waiting';
    const notes = h('textarea', { id: 'identity-notes', rows: 2, maxlength: 2000, class: 'wf-notes' });
    if (this.notesDraft) notes.value = this.notesDraft;
    notes.addEventListener('input', () => { this.notesDraft = notes.value; });
    const out = [
      h('label', { for: 'identity-notes', class: 'small', text: t('wf_notes_label') }),
      notes,
      h('p', { class: 'muted small', text: t(waiting ? 'wf_wait_join' : 'wf_wait_live') }),
    ];
    const row = h('div', { class: 'wf-row' },
      h('button', {
        type: 'button', class: 'btn btn-primary', id: 'confirm-identity-btn', text: t('wf_confirm_identity'),
        disabled: this.busy || waiting, onclick: () => this.identity('confirmed'),
      }),
      h('button', {
        type: 'button', class: 'btn btn-secondary', id: 'reject-identity-btn', text: t('wf_reject_identity'),
        disabled: this.busy || waiting || this.rejecting, onclick: () => { this.rejecting = true; this.render(); },
      }));
    out.push(row);
    if (this.rejecting) {
      out.push(h('div', { class: 'wf-confirm', role: 'group' },
        h('p', { class: 'small', text: t('wf_reject_confirm') }),
        h('div', { class: 'wf-row' },
          h('button', {
            type: 'button', class: 'btn btn-danger btn-small', id: 'reject-confirm-btn', text: t('wf_reject_identity'),
            disabled: this.busy, onclick: () => this.identity('rejected'),
          }),
          h('button', {
            type: 'button', class: 'btn btn-quiet btn-small', text: t('cancel'),
            onclick: () => { this.rejecting = false; this.render(); },
          }))));
    }
    return out;
  }

  async identity(decision) {
    const body = { decision };
    const notes = (this.notesDraft || '').trim();
    if (notes) body.notes = notes;
    this.message = null;
    await this.act(async () => {
      await this.view.api('POST', `/api/v1/signings/${this.id}/identity`, body);
      this.rejecting = false;
      this.notesDraft = '';
    });
  }

  async sign() {
    this.message = { text: t('wf_signing_busy') };
    await this.act(async () => {
      const result = await this.view.api('POST', `/api/v1/signings/${this.id}/sign`);
      this.message = { text: t('wf_signed_ok', { ms: result.sign_ms, sha: String(result.sha256).slice(0, 16) }) };
    });
  }

  async act(fn) {
    this.busy = true;
    this.render();
    try {
      await fn();
      await this.refresh();
    } catch (err) {
      this.message = { error: true, text: explain(err) };
    } finally {
      this.busy = false;
      this.render();
    }
  }

  async fetch(button, path, filename) {
    button.disabled = true;
    const label = button.textContent;
    button.textContent = t('wf_downloading');
    try {
      await download(this.token, path, filename);
      this.message = null;
    } catch (err) {
      this.message = { error: true, text: explain(err) };
      this.render();
      return;
    } finally {
      button.disabled = false;
      button.textContent = label;
    }
  }

  close() {
    this.closed = true;
    clearTimeout(this.refreshTimer);
  }
}

export function explain(err) {
  if (err && err.code === 'signer_not_live') return t('wf_signer_not_live');
  if (err && err.code === 'staff_not_publishing') return t('wf_staff_not_publishing');
  return t('wf_error', { msg: (err && err.message) || String(err) });
}
