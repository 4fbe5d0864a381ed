// The two creation forms of the officer console: an inspection with its checklist, a signing
// with its contract and signer.
import { $, h, show } from './dom.js';
import { t } from './i18n.js';

function fail(el, message) {
  el.textContent = message;
  show(el, true);
}

export function createInspectionForm({ api, onCreated }) {
  const form = $('inspection-form');
  const body = $('items-body');
  const error = $('inspection-error');

  function renumber() {
    [...body.rows].forEach((row, i) => {
      row.querySelector('[data-field="sku"]').setAttribute('aria-label', `${t('sku')} ${i + 1}`);
      row.querySelector('[data-field="description"]').setAttribute('aria-label', `${t('description')} ${i + 1}`);
      row.querySelector('[data-field="qty"]').setAttribute('aria-label', `${t('expected_qty')} ${i + 1}`);
      row.querySelector('button').setAttribute('aria-label', t('remove_item', { n: i + 1 }));
    });
  }

  function addRow(item = {}) {
    const row = h('tr', {},
      h('td', {}, h('input', { 'data-field': 'sku', maxlength: '128', value: item.sku || '' })),
      h('td', {}, h('input', { 'data-field': 'description', maxlength: '500', value: item.description || '' })),
      h('td', { class: 'qty-cell' }, h('input', { 'data-field': 'qty', type: 'number', min: '0', step: '1', inputmode: 'numeric', value: item.qty || '' })),
      h('td', {}, h('button', { type: 'button', class: 'btn btn-quiet btn-icon', text: '×', onclick: () => { row.remove(); renumber(); } })));
    body.append(row);
    renumber();
    return row;
  }

  $('add-item-btn').addEventListener('click', () => addRow().querySelector('input').focus());

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    show(error, false);
    const title = $('insp-title').value.trim();
    if (!title) {
      fail(error, t('need_title'));
      $('insp-title').focus();
      return;
    }
    const payload = { title, items: [] };
    const siteName = $('insp-site-name').value.trim();
    const siteAddress = $('insp-site-address').value.trim();
    if (siteName || siteAddress) {
      payload.site = {};
      if (siteName) payload.site.name = siteName;
      if (siteAddress) payload.site.address = siteAddress;
    }
    for (const row of body.rows) {
      const sku = row.querySelector('[data-field="sku"]').value.trim();
      if (!sku) continue;
      const item = { sku };
      const description = row.querySelector('[data-field="description"]').value.trim();
      if (description) item.description = description;
      const qty = row.querySelector('[data-field="qty"]').value.trim();
      if (qty !== '') item.expected_qty = Number.parseInt(qty, 10);
      payload.items.push(item);
    }
    const submit = form.querySelector('[type="submit"]');
    submit.disabled = true;
    try {
      await onCreated(await api('POST', '/api/v1/inspections', payload));
    } catch (err) {
      fail(error, t('error_generic', { msg: err.message }));
    } finally {
      submit.disabled = false;
    }
  });

  return {
    reset() {
      form.reset();
      body.replaceChildren();
      addRow();
      show(error, false);
    },
  };
}

export function createSigningForm({ api, onCreated }) {
  const form = $('signing-form');
  const error = $('signing-error');

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    show(error, false);
    const file = $('sign-document').files[0];
    if (!file) {
      fail(error, t('need_pdf'));
      $('sign-document').focus();
      return;
    }
    const name = $('signer-name').value.trim();
    if (!name) {
      fail(error, t('need_name'));
      $('signer-name').focus();
      return;
    }
    const signer = { name };
    for (const [field, id] of [['id_number', 'signer-id'], ['phone', 'signer-phone'], ['email', 'signer-email']]) {
      const value = $(id).value.trim();
      if (value) signer[field] = value;
    }
    const data = new FormData();
    const title = $('sign-title').value.trim();
    if (title) data.append('title', title);
    data.append('signer', new Blob([JSON.stringify(signer)], { type: 'application/json' }));
    data.append('document', new Blob([file], { type: 'application/pdf' }), file.name);
    const submit = form.querySelector('[type="submit"]');
    submit.disabled = true;
    try {
      await onCreated(await api('POST', '/api/v1/signings', data));
    } catch (err) {
      fail(error, t('error_generic', { msg: err.message }));
    } finally {
      submit.disabled = false;
    }
  });

  return {
    reset() {
      form.reset();
      show(error, false);
    },
  };
}
