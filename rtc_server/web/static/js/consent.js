// The signer's sheet on the participant page: the contract's first page and a download, a
// handwritten signature pad, and the consent (a checkbox and a button), usable once the officer has
// confirmed the signer's identity on video. The session state comes from the signaling socket.
import { apiCall } from './api.js';
import { download, fetchBlob } from './blobs.js';
import { $, h, show } from './dom.js';
import { t } from './i18n.js';
import './i18n_workflows.js';
import { SignaturePad, blobToBase64 } from './signature_pad.js';

const AFTER_CONSENT = new Set(['consented', 'signed']);

export class SignerSheet {
  constructor({ sessionId, token }) {
    this.sessionId = sessionId;
    this.token = token;
    this.state = null;
    this.sending = false;
    this.consented = false;
    this.previewUrl = null;
    this.build();
    this.loadPreview();
    show($('signing-panel'), true);
    document.body.classList.add('has-sheet');
  }

  build() {
    this.preview = h('img', { id: 'contract-preview', class: 'contract-preview', alt: t('wf_preview_alt') });
    this.previewNote = h('p', { class: 'muted small', hidden: true, text: t('wf_preview_failed') });
    this.downloadBtn = h('button', {
      type: 'button', class: 'btn btn-quiet btn-small wf-link', id: 'download-contract-btn', text: t('wf_download_contract'),
      onclick: () => this.downloadContract(),
    });
    this.pad = new SignaturePad({ label: t('wf_signature_label') });
    this.pad.addEventListener('change', () => this.update());
    this.clearBtn = h('button', {
      type: 'button', class: 'btn btn-quiet btn-small', id: 'signature-clear-btn', text: t('wf_signature_clear'),
      onclick: () => this.pad.clear(),
    });
    this.accept = h('input', { type: 'checkbox', id: 'consent-accept' });
    this.accept.addEventListener('change', () => this.update());
    this.consentBtn = h('button', {
      type: 'button', class: 'btn btn-primary btn-huge btn-block', id: 'consent-btn', text: t('wf_consent_button'),
      disabled: true, onclick: () => this.consent(),
    });
    this.status = h('p', { id: 'consent-status', class: 'consent-status', role: 'status', 'aria-live': 'polite' });
    this.form = h('div', { class: 'consent-form' },
      h('div', { class: 'sig-head' },
        h('span', { class: 'sig-label', id: 'sig-label', text: t('wf_signature_label') }),
        this.clearBtn),
      h('p', { class: 'muted small sig-hint', text: t('wf_signature_hint') }),
      this.pad.el,
      h('label', { class: 'consent-accept', for: 'consent-accept' }, this.accept, h('span', { text: t('wf_accept_label') })),
      this.consentBtn);
    // The status first: after consenting it is the one thing to read, and it must be in view.
    $('signing-panel-body').replaceChildren(
      this.status,
      h('p', { class: 'small contract-intro', text: t('wf_contract_intro') }),
      h('figure', { class: 'contract-figure' }, this.preview, this.previewNote),
      this.downloadBtn,
      this.form);
    this.update();
  }

  async loadPreview() {
    try {
      const blob = await fetchBlob(this.token, `/api/v1/signings/${this.sessionId}/document/preview.png`);
      if (this.previewUrl) URL.revokeObjectURL(this.previewUrl);
      this.previewUrl = URL.createObjectURL(blob);
      this.preview.src = this.previewUrl;
      this.preview.dataset.loaded = 'true';
    } catch {
      show(this.preview, false);
      show(this.previewNote, true);
    }
  }

  async downloadContract() {
    const signed = this.state === 'signed';
    this.downloadBtn.disabled = true;
    try {
      await download(this.token, `/api/v1/signings/${this.sessionId}/document`, signed ? 'contract-signed.pdf' : 'contract.pdf');
    } catch (err) {
      this.say(t('wf_error', { msg: err.message }), 'error');
    } finally {
      this.downloadBtn.disabled = false;
    }
  }

  setState(state) {
    if (!state || state === this.state) return;
    this.state = state;
    if (AFTER_CONSENT.has(state)) this.consented = true;
    this.update();
  }

  update() {
    const ready = this.state === 'identity_confirmed';
    show(this.form, !this.consented);
    this.pad.setDisabled(this.sending);
    this.consentBtn.disabled = !ready || this.sending || !this.accept.checked;
    if (this.sending) return;
    if (this.state === 'signed') this.say(t('wf_signed_done'), 'ok');
    else if (this.consented) this.say(t('wf_consent_done'), 'ok');
    else if (ready) this.say(t('wf_consent_ready'), 'ready');
    else this.say(t('wf_consent_waiting'), 'waiting');
  }

  say(text, kind) {
    this.status.textContent = text;
    this.status.dataset.kind = kind;
  }

  async consent() {
    if (this.pad.empty) {
      this.say(t('wf_signature_empty'), 'error');
      return;
    }
    this.sending = true;
    this.update();
    this.say(t('wf_consent_sending'), 'waiting');
    try {
      const png = await this.pad.toPng();
      if (!png || png.size > 200 * 1024) throw Object.assign(new Error(t('wf_signature_too_large')), { code: 'signature_too_large' });
      const signature = await blobToBase64(png);
      const data = await apiCall(this.token, 'POST', `/api/v1/signings/${this.sessionId}/consent`, {
        accept: true, signature_png: signature,
      });
      this.consented = true;
      this.sending = false;
      this.setState(data && data.state);
      this.update();
      $('signing-panel').scrollTop = 0;
    } catch (err) {
      this.sending = false;
      this.update();
      this.say(err.code === 'signature_too_large' ? t('wf_signature_too_large') : t('wf_consent_failed', { msg: err.message }), 'error');
    }
  }

  close() {
    this.pad.close();
    if (this.previewUrl) URL.revokeObjectURL(this.previewUrl);
    document.body.classList.remove('has-sheet');
  }
}
