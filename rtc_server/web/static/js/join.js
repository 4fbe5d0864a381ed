// The participant page (phone first): one tap to join, the right camera, plain-word problems,
// reconnection after a network loss, location for staff, Chinese or English.
import { apiCall } from './api.js';
import { CallClient } from './call.js';
import { $, h, show } from './dom.js';
import { applyI18n, t } from './i18n.js';
import { openCamera, openOtherCamera } from './media.js';
import { Tile } from './tiles.js';
import { attachWorkflow } from './join_workflows.js';

const sessionId = decodeURIComponent(location.pathname.split('/').filter(Boolean)[1] || '');
const tokenKey = `rtc.invite.${sessionId}`;
const joinedKey = `rtc.joined.${sessionId}`;

const state = {
  token: null,
  me: null,
  call: null,
  stream: null,
  facing: 'user',
  remoteTile: null,
  remoteId: null,
  joinClickedAt: null,
  locationSent: false,
};
// Test and support hook: figures only, never the token.
window.__rtc = { snapshot };

// The invite token arrives in the fragment (never sent to the server); keep it for this tab only
// and take it out of the address bar so it is not shared, bookmarked or shown over a shoulder.
function takeToken() {
  const hash = location.hash.slice(1);
  if (hash.startsWith('rtci_')) {
    sessionStorage.setItem(tokenKey, hash);
    history.replaceState(null, '', location.pathname + location.search);
  }
  return sessionStorage.getItem(tokenKey);
}

function setStatus(kind) {
  const el = $('status');
  el.dataset.state = kind;
  const quiet = kind === 'connected' || kind === 'closed' || kind === 'idle';
  document.body.classList.toggle('has-status', !quiet);
  if (quiet) {
    show(el, false);
    return;
  }
  el.textContent = t(`conn_${kind}`);
  show(el, true);
}

function lobbyError(message) {
  const el = $('lobby-error');
  el.textContent = message;
  show(el, true);
}

function showOnly(id) {
  for (const v of ['lobby', 'media-problem', 'call', 'done']) show($(v), v === id);
  document.body.classList.toggle('in-call', id === 'call');
}

function explain(problem) {
  const kind = problem.kind || 'unknown';
  $('problem-title').textContent = t(`err_${kind}_title`);
  $('problem-body').textContent = t(`err_${kind}_body`, { name: problem.errorName || problem.name });
  $('problem-steps').replaceChildren(...t(`err_${kind}_steps`).split('|').map((s) => h('li', { text: s })));
  $('media-problem').dataset.problem = kind;
  showOnly('media-problem');
  $('retry-btn').focus();
}

async function join() {
  state.joinClickedAt = Date.now();
  $('join-btn').disabled = true;
  try {
    state.stream = await openCamera({ facing: state.facing });
  } catch (problem) {
    $('join-btn').disabled = false;
    explain(problem);
    return;
  }
  sessionStorage.setItem(joinedKey, '1');
  showOnly('call');
  const self = $('self-view');
  self.srcObject = state.stream;
  self.classList.toggle('mirrored', state.facing === 'user');
  self.play().catch(() => {});
  startCall();
  if (state.me.role === 'staff') askLocation();
}

function startCall() {
  const call = new CallClient({ sessionId, token: state.token });
  state.call = call;
  attachWorkflow(call, state.me, state.token, sessionId);
  call.addEventListener('state', (e) => {
    setStatus(e.detail);
    // While the banner says what is happening, the stage stays quiet.
    $('remote-waiting').textContent = e.detail === 'connected' ? t('waiting_officer') : '';
  });
  call.addEventListener('welcome', () => {
    for (const p of call.participants.values()) if (p.id !== call.me.id) noteParticipant(p);
    if (state.pendingLocation) sendLocation(state.pendingLocation);
  });
  call.addEventListener('presence', (e) => noteParticipant(e.detail));
  call.addEventListener('remote', (e) => {
    const tile = remoteTile(e.detail.participantId);
    tile.attach(e.detail.stream, e.detail.pc);
    // Subscribed on joining: the picture may come later, when the officer's camera starts.
    tile.video.addEventListener('loadeddata', () => show($('remote-waiting'), false), { once: true });
  });
  call.addEventListener('remote-removed', (e) => {
    if (state.remoteTile && e.detail.participantId === state.remoteId) {
      state.remoteTile.remove();
      state.remoteTile = null;
      state.remoteId = null;
      show($('remote-waiting'), true);
    }
  });
  call.addEventListener('ended', () => finish('done_title', 'done_body'));
  call.addEventListener('fatal', (e) => {
    if (e.detail.code === 'session_ended') {
      finish('done_title', 'done_body');
      return;
    }
    sessionStorage.removeItem(joinedKey);
    stopLocal();
    showOnly('lobby');
    lobbyError(t('link_invalid'));
  });
  call.setLocalStream(state.stream);
  call.start();
}

function noteParticipant(p) {
  // The officer's tile appears with the officer's media (the 'remote' event), not before.
  if (state.remoteTile && p.id === state.remoteId && !p.online) {
    state.remoteTile.remove();
    state.remoteTile = null;
    state.remoteId = null;
    show($('remote-waiting'), true);
  }
}

function remoteTile(participantId) {
  if (state.remoteTile && state.remoteId !== participantId) state.remoteTile.remove();
  if (!state.remoteTile || state.remoteId !== participantId) {
    const p = state.call.participants.get(participantId) || {};
    const label = p.role === 'officer' ? [t('officer'), p.name].filter(Boolean).join(' · ') : (p.name || '');
    state.remoteTile = new Tile({ id: participantId, label, role: null });
    state.remoteId = participantId;
    $('remote').append(state.remoteTile.el);
  }
  return state.remoteTile;
}

function askLocation() {
  if (!('geolocation' in navigator)) return;
  navigator.geolocation.getCurrentPosition(
    (pos) => sendLocation(pos.coords),
    () => { /* refused: the officer sees that no location arrived */ },
    { enableHighAccuracy: true, timeout: 20000, maximumAge: 60000 },
  );
}

function sendLocation(coords) {
  const plain = { latitude: coords.latitude, longitude: coords.longitude, accuracy: coords.accuracy };
  state.pendingLocation = plain;
  if (state.call && state.call.welcomed && state.call.sendLocation(plain)) {
    state.pendingLocation = null;
    state.locationSent = true;
  }
}

async function switchCamera() {
  if (!state.stream) return;
  const button = $('switch-btn');
  button.disabled = true;
  try {
    const old = state.stream.getVideoTracks()[0];
    const { track, facing } = await openOtherCamera(state.facing);
    if (old) {
      track.enabled = old.enabled;
      state.stream.removeTrack(old);
      old.stop();
    }
    state.stream.addTrack(track);
    state.facing = facing;
    $('self-view').classList.toggle('mirrored', facing === 'user');
    await state.call.replaceTrack('video', track);
  } catch (problem) {
    // Keep the current camera; nothing else to do on a one-camera device.
  } finally {
    button.disabled = false;
  }
}

function toggle(kind, button, onKey, offKey) {
  const track = kind === 'audio' ? state.stream.getAudioTracks()[0] : state.stream.getVideoTracks()[0];
  if (!track) return;
  track.enabled = !track.enabled;
  button.setAttribute('aria-pressed', String(!track.enabled));
  button.querySelector('.ctl-label').textContent = t(track.enabled ? onKey : offKey);
  if (kind === 'video') $('self-view').classList.toggle('camera-off', !track.enabled);
}

function stopLocal() {
  if (state.call) state.call.stop();
  state.call = null;
  if (state.stream) for (const track of state.stream.getTracks()) track.stop();
  state.stream = null;
  if (state.remoteTile) state.remoteTile.remove();
  state.remoteTile = null;
}

function finish(titleKey, bodyKey) {
  sessionStorage.removeItem(joinedKey);
  stopLocal();
  setStatus('idle');
  $('done-title').textContent = t(titleKey);
  $('done-body').textContent = t(bodyKey);
  showOnly('done');
}

async function snapshot() {
  const tile = state.remoteTile;
  const s = tile && tile.pc ? await tile.refreshStats() : null;
  const pub = state.call && state.call.publisher;
  // Whether the server's answer asked this publisher for RED/ULPFEC (repairs loss on weak uplinks).
  const sdp = pub && pub.pc.remoteDescription ? pub.pc.remoteDescription.sdp : '';
  const videoFec = /ulpfec\/90000/.test(sdp) && /red\/90000/.test(sdp);
  return {
    participantId: state.me && state.me.participant_id,
    joinClickedAt: state.joinClickedAt,
    publishedAt: state.call ? state.call.publishedAt : null,
    connection: state.call ? state.call.state : 'none',
    publishing: Boolean(state.call && state.call.publisher && state.call.publisher.pc.connectionState === 'connected'),
    locationSent: state.locationSent,
    facing: state.facing,
    videoFec,
    remote: tile ? { videoWidth: tile.video.videoWidth, framesDecoded: s ? s.framesDecoded : 0, audioBytes: s ? s.audioBytes : 0 } : null,
  };
}

async function init() {
  applyI18n();
  state.token = takeToken();
  $('join-btn').addEventListener('click', join);
  $('retry-btn').addEventListener('click', () => { showOnly('lobby'); join(); });
  $('mic-btn').addEventListener('click', (e) => toggle('audio', e.currentTarget, 'mute', 'unmute'));
  $('cam-btn').addEventListener('click', (e) => toggle('video', e.currentTarget, 'camera_off_short', 'camera_on_short'));
  $('switch-btn').addEventListener('click', switchCamera);
  $('leave-btn').addEventListener('click', () => finish('left_title', 'left_body'));
  if (!state.token) {
    lobbyError(t('link_missing'));
    return;
  }
  try {
    state.me = await apiCall(state.token, 'GET', '/api/v1/me');
  } catch (err) {
    sessionStorage.removeItem(tokenKey);
    lobbyError(err.status === 0 ? t('error_generic', { msg: err.message }) : t('link_invalid'));
    return;
  }
  if (state.me.kind !== 'participant' || state.me.session_id !== sessionId) {
    lobbyError(t('link_invalid'));
    return;
  }
  const role = state.me.role;
  document.body.dataset.role = role;
  // Staff show the goods (rear camera); signers show themselves (front camera).
  state.facing = role === 'staff' ? 'environment' : 'user';
  if (role === 'staff') $('lobby-title').textContent = t('join_title_inspection');
  if (role === 'signer') $('lobby-title').textContent = t('join_title_signing');
  show($('tip-location'), role === 'staff');
  $('join-btn').disabled = false;
  // Back after a reload or a crash of the tab: rejoin without asking again.
  if (sessionStorage.getItem(joinedKey) === '1') join();
}

init();
