// Officer console, inspection session: the checklist ticking live from code.detected events (with
// the sighting count), the detected codes (unexpected ones marked), "Take still" and the stills
// gallery (thumbnails fetched with the bearer token into blobs), and the report once ended.
import { download, fetchBlob } from './blobs.js';
import { $, h, formatTime } from './dom.js';
import { t } from './i18n.js';
import './i18n_workflows.js';
import { explain } from './signing_panel.js';

const MAX_CODES_SHOWN = 100;

export class InspectionPanel {
  constructor(view, token) {
    this.view = view;
    this.token = token;
    this.codes = [];
    this.stills = new Map();
    this.objectUrls = [];
    this.closed = false;
    this.build();
    this.renderChecklist();
    this.renderCodes();
    this.loadStills().catch(() => {});
  }

  get id() { return this.view.id; }
  get ended() { return this.view.detail.state === 'ended'; }

  build() {
    this.stillBtn = h('button', {
      type: 'button', class: 'btn btn-primary btn-small', id: 'take-still-btn', text: t('wf_take_still'),
      onclick: () => this.takeStill(),
    });
    this.stillMsg = h('p', { id: 'still-message', class: 'small', role: 'status', hidden: true });
    this.stillBar = h('div', { class: 'wf-row wf-still-bar' }, this.stillBtn);
    $('stills').before(this.stillBar, this.stillMsg);
    this.reportBtn = h('button', {
      type: 'button', class: 'btn btn-secondary', id: 'download-report-btn', text: t('wf_download_report'),
      onclick: () => this.downloadReport(),
    });
    this.reportMsg = h('p', { id: 'report-message', class: 'small', role: 'status', hidden: true });
    $('report-panel').append(this.reportBtn, this.reportMsg);
    this.onState();
  }

  onState() {
    const ended = this.ended;
    this.stillBtn.hidden = ended;
    this.reportBtn.hidden = !ended;
    const hint = $('report-panel').querySelector('[data-i18n="report_hint"]');
    if (hint) hint.hidden = ended;
  }

  onEvent(e) {
    const d = e.data || {};
    if (e.type === 'code.detected') {
      this.codes.unshift({ ...d, ts: e.ts, seq: e.seq });
      if (this.codes.length > MAX_CODES_SHOWN) this.codes.length = MAX_CODES_SHOWN;
      if (d.sku) this.tick(d.sku, d.count, e.ts);
      this.renderCodes();
    } else if (e.type === 'snapshot.taken' && d.still_id) {
      this.addStill({ id: d.still_id, url: d.url, sha256: d.sha256, width: d.width, height: d.height, media_time: d.media_time, ts: e.ts });
    }
  }

  tick(sku, count, ts) {
    const item = (this.view.detail.items || []).find((i) => i.sku === sku);
    if (!item) return;
    item.seen = true;
    item.seen_count = typeof count === 'number' ? Math.max(count, item.seen_count || 0) : (item.seen_count || 0) + 1;
    if (!item.first_seen_at) item.first_seen_at = ts;
    this.renderChecklist();
  }

  renderChecklist() {
    const items = this.view.detail.items || [];
    const list = $('checklist');
    if (!items.length) {
      list.replaceChildren(h('li', { class: 'muted small', text: t('wf_no_items') }));
      return;
    }
    list.replaceChildren(...items.map((item) => {
      const count = item.seen_count || (item.seen ? 1 : 0);
      const qty = item.expected_qty !== null && item.expected_qty !== undefined ? item.expected_qty : null;
      return h('li', { class: `check-item${item.seen ? ' seen' : ''}`, dataset: { sku: item.sku, count: String(count) } },
        h('span', { class: 'check-mark', 'aria-hidden': 'true', text: item.seen ? '✓' : '' }),
        h('span', { class: 'check-body' },
          h('strong', { text: item.sku }),
          item.description ? h('span', { class: 'muted', text: ` ${item.description}` }) : null),
        h('span', { class: `check-count${item.seen ? '' : ' muted'}` },
          item.seen ? t('wf_count', { n: count }) : t('not_seen'),
          qty !== null ? ` ${t('wf_expected', { n: qty })}` : ''),
        h('span', { class: 'visually-hidden', text: item.seen ? t('seen') : t('not_seen') }));
    }));
  }

  renderCodes() {
    $('codes').replaceChildren(...this.codes.map((c) => h('li', {
      class: `code-item${c.unexpected ? ' code-unexpected' : ''}`, dataset: { value: c.value, unexpected: String(Boolean(c.unexpected)) },
    },
    h('span', { class: 'code-value', text: c.value }),
    h('span', { class: 'muted small', text: ` ${c.format || ''}` }),
    c.ts ? h('time', { class: 'muted small', datetime: c.ts, text: ` ${formatTime(c.ts)}` }) : null,
    c.unexpected ? h('span', { class: 'wf-tag wf-tag-warn', text: t('wf_unexpected') }) : null)));
    $('codes-panel').classList.toggle('has-items', this.codes.length > 0);
  }

  async loadStills() {
    const { stills } = await this.view.api('GET', `/api/v1/inspections/${this.id}/snapshots`);
    for (const still of stills || []) this.addStill(still);
  }

  async takeStill() {
    this.stillBtn.disabled = true;
    this.stillBtn.textContent = t('wf_taking_still');
    this.note(this.stillMsg, null);
    try {
      const still = await this.view.api('POST', `/api/v1/inspections/${this.id}/snapshots`);
      this.addStill(still);
    } catch (err) {
      this.note(this.stillMsg, explain(err));
    } finally {
      this.stillBtn.disabled = false;
      this.stillBtn.textContent = t('wf_take_still');
    }
  }

  addStill(still) {
    if (!still || !still.id || this.stills.has(still.id) || this.closed) return;
    const img = h('img', { class: 'still-thumb', alt: t('wf_still_alt', { time: formatTime(still.ts) }) });
    const link = h('a', { class: 'still-link', target: '_blank', rel: 'noopener', title: t('wf_still_open') }, img);
    const facts = [formatTime(still.ts)];
    if (still.width && still.height) facts.push(`${still.width}×${still.height}`);
    if (typeof still.media_time === 'number') facts.push(`${still.media_time.toFixed(1)} s`);
    const figure = h('figure', { class: 'still', dataset: { still: still.id } },
      link, h('figcaption', { class: 'small muted', text: facts.join(' · ') }));
    this.stills.set(still.id, figure);
    const gallery = $('stills');
    // Newest first, whatever order the list and the live event arrive in.
    const after = [...gallery.children].find((el) => (el.dataset.ts || '') < (still.ts || ''));
    figure.dataset.ts = still.ts || '';
    gallery.insertBefore(figure, after || null);
    $('stills-panel').classList.add('has-items');
    fetchBlob(this.token, still.url).then((blob) => {
      if (this.closed) return;
      const url = URL.createObjectURL(blob);
      this.objectUrls.push(url);
      img.src = url;
      link.href = url;
      figure.dataset.loaded = 'true';
    }).catch(() => { figure.classList.add('still-failed'); });
  }

  async downloadReport() {
    this.reportBtn.disabled = true;
    this.note(this.reportMsg, t('wf_downloading'), false);
    try {
      await download(this.token, `/api/v1/inspections/${this.id}/report`, `inspection-report-${this.id}.pdf`);
      this.note(this.reportMsg, null);
    } catch (err) {
      this.note(this.reportMsg, err && err.code === 'session_not_ended' ? t('wf_report_not_ready') : explain(err));
    } finally {
      this.reportBtn.disabled = false;
    }
  }

  note(el, text, error = true) {
    el.hidden = !text;
    el.textContent = text || '';
    el.className = `small${text ? ` notice ${error ? 'notice-error' : 'notice-ok'}` : ''}`;
  }

  close() {
    this.closed = true;
    for (const url of this.objectUrls) URL.revokeObjectURL(url);
    this.objectUrls = [];
    this.stillBar.remove();
    this.stillMsg.remove();
    this.reportBtn.remove();
    this.reportMsg.remove();
    $('stills').replaceChildren();
    $('codes').replaceChildren();
    $('stills-panel').classList.remove('has-items');
    $('codes-panel').classList.remove('has-items');
  }
}
