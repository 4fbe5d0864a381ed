// The officer console: sign in, sessions, creating inspections and signings, and one live session.
import { apiCall, ApiError } from './api.js';
import { $, h, show, formatDateTime } from './dom.js';
import { applyI18n, t } from './i18n.js';
import { createInspectionForm, createSigningForm } from './console_forms.js';
import { SessionView } from './console_session.js';

const TOKEN_KEY = 'rtc.officer.token';

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  user: null,
  sessionView: null,
  // Invite links are returned once, at creation; kept in memory for this tab only.
  invites: new Map(),
};

const views = ['welcome-view', 'inspection-form-view', 'signing-form-view', 'session-view'];

function showView(id) {
  for (const v of views) show($(v), v === id);
}

async function api(method, path, body) {
  try {
    return await apiCall(state.token, method, path, body);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401 && state.token) {
      signOut(t('session_expired'));
    }
    throw err;
  }
}

function signOut(message) {
  if (state.sessionView) state.sessionView.close();
  state.sessionView = null;
  state.token = null;
  state.user = null;
  state.invites.clear();
  sessionStorage.removeItem(TOKEN_KEY);
  show($('app-view'), false);
  show($('user-box'), false);
  show($('login-view'), true);
  const error = $('login-error');
  error.textContent = message || '';
  show(error, Boolean(message));
  $('login-username').focus();
}

async function signIn(event) {
  event.preventDefault();
  const error = $('login-error');
  show(error, false);
  const username = $('login-username').value.trim();
  const password = $('login-password').value;
  if (!username || !password) {
    error.textContent = t('login_failed');
    show(error, true);
    return;
  }
  try {
    const result = await apiCall(null, 'POST', '/api/v1/login', { username, password });
    state.token = result.token;
    sessionStorage.setItem(TOKEN_KEY, result.token);
    $('login-password').value = '';
    await enter();
  } catch (err) {
    error.textContent = err.status === 429 ? t('login_throttled')
      : err.status === 401 ? t('login_failed') : t('error_generic', { msg: err.message });
    show(error, true);
  }
}

async function enter() {
  const me = await api('GET', '/api/v1/me');
  if (me.kind !== 'user') {
    signOut();
    return;
  }
  state.user = me;
  $('user-name').textContent = me.username;
  show($('login-view'), false);
  show($('user-box'), true);
  show($('app-view'), true);
  await refreshSessions();
  const match = /^#session\/([A-Za-z0-9_-]+)$/.exec(location.hash);
  if (match) await openSession(match[1]);
  else showView('welcome-view');
}

async function refreshSessions() {
  const list = $('session-list');
  const { sessions } = await api('GET', '/api/v1/sessions?limit=100');
  list.replaceChildren(...sessions.map((s) => {
    const current = state.sessionView && state.sessionView.id === s.id;
    return h('li', {},
      h('button', {
        type: 'button', class: `session-item${current ? ' current' : ''}`,
        'aria-current': current ? 'true' : null,
        dataset: { sessionId: s.id }, onclick: () => openSession(s.id),
      },
      h('span', { class: 'session-item-title', text: s.title || t(`kind_${s.kind}`) }),
      h('span', { class: 'session-item-meta' },
        h('span', { class: `badge badge-${s.state}`, text: t(`state_${s.state}`) }),
        ' ', t(`kind_${s.kind}`), ' · ', formatDateTime(s.created_at))));
  }));
  show($('session-list-empty'), sessions.length === 0);
}

async function openSession(id) {
  if (state.sessionView) state.sessionView.close();
  history.replaceState(null, '', `#session/${id}`);
  const view = new SessionView({ id, api, invites: state.invites, onChange: () => refreshSessions() });
  state.sessionView = view;
  showView('session-view');
  try {
    await view.open();
  } catch (err) {
    // Gone, or another officer's: back to the start page, with the reason, still signed in.
    if (!state.token) return;
    leaveSession();
    showView('welcome-view');
    const notice = $('welcome-error');
    notice.textContent = t('error_generic', { msg: err.message });
    show(notice, true);
    return;
  }
  show($('welcome-error'), false);
  await refreshSessions();
}

function leaveSession() {
  if (state.sessionView) state.sessionView.close();
  state.sessionView = null;
  history.replaceState(null, '', location.pathname);
}

async function created(result) {
  for (const [role, invite] of Object.entries(result.invites || {})) state.invites.set(result.id, { role, ...invite });
  await openSession(result.id);
}

function init() {
  applyI18n();
  $('login-form').addEventListener('submit', signIn);
  $('logout-btn').addEventListener('click', async () => {
    try { await api('POST', '/api/v1/logout'); } catch { /* signing out anyway */ }
    leaveSession();
    signOut();
  });
  $('refresh-btn').addEventListener('click', () => refreshSessions());
  const inspectionForm = createInspectionForm({ api, onCreated: created });
  const signingForm = createSigningForm({ api, onCreated: created });
  const startInspection = () => {
    leaveSession();
    inspectionForm.reset();
    showView('inspection-form-view');
    $('insp-title').focus();
  };
  const startSigning = () => {
    leaveSession();
    signingForm.reset();
    showView('signing-form-view');
    $('sign-title').focus();
  };
  $('new-inspection-btn').addEventListener('click', startInspection);
  $('new-signing-btn').addEventListener('click', startSigning);
  for (const button of document.querySelectorAll('[data-start]')) {
    button.addEventListener('click', button.dataset.start === 'signing' ? startSigning : startInspection);
  }
  for (const button of document.querySelectorAll('[data-cancel]')) {
    button.addEventListener('click', () => showView('welcome-view'));
  }
  if (state.token) {
    enter().catch(() => signOut());
  } else {
    signOut();
  }
}

init();
