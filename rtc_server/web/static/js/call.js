// One browser's place in a session: the signaling WebSocket (protocol in rtc_server/signaling.py),
// one peer connection publishing the local camera and microphone, and one per remote participant
// it watches. Reconnects by itself with backoff after a network loss, then publishes again.
import { completeOffer, toIceServers } from './rtc.js';

// Roles the server lets publish (rtc_server/conference.py); observers only watch.
const PUBLISHING_ROLES = new Set(['officer', 'staff', 'signer']);
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000];
const MAX_BACKOFF_MS = 10000;
const PING_EVERY_MS = 4000;
// A ping unanswered for this long means the link is dead: browsers may not notice for minutes.
// Measured from the ping, not from the last message, so that a background tab whose timers the
// browser throttles does not mistake its own silence for the server's.
const PONG_LIMIT_MS = 6000;
// A media path that stays "disconnected" this long is rebuilt rather than left to recover.
const DISCONNECTED_LIMIT_MS = 6000;

function deviceInfo() {
  return {
    ua: navigator.userAgent.slice(0, 300),
    lang: (navigator.language || '').slice(0, 20),
    screen: `${screen.width}x${screen.height}`,
    touch: navigator.maxTouchPoints > 0,
  };
}

export class CallClient extends EventTarget {
  constructor({ sessionId, token, receiveMedia = true }) {
    super();
    this.sessionId = sessionId;
    this.token = token;
    this.receiveMedia = receiveMedia;
    this.ws = null;
    this.state = 'idle';
    this.me = null;
    this.session = null;
    this.participants = new Map();
    this.iceServers = [];
    this.localStream = null;
    this.publisher = null; // {pc, generation}
    this.remotes = new Map(); // participant id -> {pc, ref, resourceId, stream}
    this.attempt = 0;
    this.generation = 0;
    this.refCounter = 0;
    this.closed = false;
    this.retryTimer = null;
    this.pingTimer = null;
    this.lastHeard = 0;
    this.pingSentAt = 0;
    this.publishedAt = null;
    this.onOnline = () => {
      if (this.closed || !this.retryTimer) return;
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
      this.connect();
    };
    // A phone that loses its network usually comes back with another address: start over rather
    // than wait for the old socket and peer connections to time out.
    this.onOffline = () => {
      if (this.closed) return;
      this.restart();
      this.setState('offline');
    };
    window.addEventListener('online', this.onOnline);
    window.addEventListener('offline', this.onOffline);
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.emit('state', state);
  }

  start() {
    this.closed = false;
    this.connect();
  }

  connect() {
    if (this.closed) return;
    this.retryTimer = null;
    this.generation += 1;
    const generation = this.generation;
    this.setState(this.attempt === 0 ? 'connecting' : 'reconnecting');
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    let ws;
    try {
      ws = new WebSocket(`${scheme}://${location.host}/api/v1/sessions/${encodeURIComponent(this.sessionId)}/ws`);
    } catch (err) {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    this.welcomed = false;
    this.pingSentAt = 0;
    ws.addEventListener('open', () => {
      if (generation !== this.generation) return;
      this.lastHeard = Date.now();
      // The token goes in the first message, never in the URL: URLs end up in logs.
      this.send({ type: 'hello', token: this.token, device: deviceInfo() });
    });
    ws.addEventListener('message', (e) => {
      if (generation !== this.generation) return;
      this.lastHeard = Date.now();
      let msg;
      try { msg = JSON.parse(e.data); } catch { return; }
      this.handle(msg, generation).catch((err) => this.emit('problem', String(err && err.message || err)));
    });
    ws.addEventListener('close', (e) => {
      if (generation !== this.generation) return;
      this.teardownPeers();
      if (this.closed) return;
      if (!this.welcomed && (e.code === 1008 || (e.code >= 4000 && e.code < 4500))) {
        this.fatal(e.reason || 'refused', e.code);
        return;
      }
      this.scheduleReconnect();
    });
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => this.heartbeat(), PING_EVERY_MS);
  }

  heartbeat() {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    if (this.pingSentAt && this.lastHeard < this.pingSentAt) {
      if (Date.now() - this.pingSentAt > PONG_LIMIT_MS) this.restart();
      return;
    }
    this.pingSentAt = Date.now();
    this.send({ type: 'ping' });
  }

  scheduleReconnect() {
    if (this.closed || this.retryTimer) return;
    this.setState(navigator.onLine === false ? 'offline' : 'reconnecting');
    const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    const delay = Math.min(MAX_BACKOFF_MS, base * (0.75 + Math.random() * 0.5));
    this.attempt += 1;
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  // Reconnect now (used when a peer connection fails while the socket still looks open).
  restart() {
    if (this.closed) return;
    if (this.ws) {
      this.generation += 1;
      try { this.ws.close(); } catch { /* already closed */ }
    }
    this.teardownPeers();
    this.scheduleReconnect();
  }

  fatal(code, message) {
    this.closed = true;
    clearInterval(this.pingTimer);
    this.teardownPeers();
    this.setState('closed');
    this.emit('fatal', { code, message });
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(msg));
      return true;
    }
    return false;
  }

  async handle(msg, generation) {
    switch (msg.type) {
      case 'welcome':
        this.welcomed = true;
        this.attempt = 0;
        this.me = { id: msg.participant_id, role: msg.role };
        this.session = msg.session || null;
        this.iceServers = toIceServers(msg.ice_servers);
        this.participants = new Map((msg.participants || []).map((p) => [p.id, p]));
        this.setState('connected');
        this.emit('welcome', msg);
        if (this.session && this.session.state === 'ended') {
          this.sessionEnded();
          return;
        }
        if (this.localStream) this.publish(generation);
        for (const p of this.participants.values()) this.reconcile(p, null);
        break;
      case 'presence': {
        const p = msg.participant;
        if (!p || !p.id) return;
        const before = this.participants.get(p.id) || null;
        this.participants.set(p.id, p);
        this.emit('presence', p);
        this.reconcile(p, before);
        break;
      }
      case 'published':
        if (this.publisher && this.publisher.generation === generation && this.publisher.pc.signalingState === 'have-local-offer') {
          await this.publisher.pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
          this.emit('published', null);
        }
        break;
      case 'subscribed': {
        const remote = [...this.remotes.values()].find((r) => r.ref === msg.ref);
        if (remote && remote.pc.signalingState === 'have-local-offer') {
          remote.resourceId = msg.resource_id;
          await remote.pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
        }
        break;
      }
      case 'event':
        this.emit('event', msg.event);
        break;
      case 'hint':
        this.emit('hint', msg);
        break;
      case 'session':
        if (this.session) this.session.state = msg.state;
        this.emit('session', msg);
        if (msg.state === 'ended') this.sessionEnded();
        break;
      case 'error':
        if (!this.welcomed) {
          this.fatal(msg.code, msg.message);
          return;
        }
        if (msg.ref) {
          const remote = [...this.remotes.values()].find((r) => r.ref === msg.ref);
          if (remote) this.dropRemote(remote.participantId, false);
        }
        this.emit('problem', `${msg.code}: ${msg.message}`);
        break;
      default:
        break;
    }
  }

  sessionEnded() {
    this.closed = true;
    clearInterval(this.pingTimer);
    this.teardownPeers();
    if (this.ws) { this.generation += 1; this.ws.close(1000); }
    this.setState('closed');
    this.emit('ended', null);
  }

  // Watch everyone who is online and may publish, from the moment they join: the server binds a
  // subscription to the participant, so media flows as soon as they publish, without waiting for
  // their "publishing" presence and one more negotiation. Whoever leaves is dropped; whoever comes
  // back (a reload, a reconnect) gets a fresh subscription.
  reconcile(p, before) {
    if (!this.receiveMedia || !this.me || p.id === this.me.id) return;
    const watchable = p.online && (p.publishing || PUBLISHING_ROLES.has(p.role));
    const have = this.remotes.has(p.id);
    if (watchable && (!have || (before && !before.online))) this.subscribe(p.id);
    else if (!p.online && have) this.dropRemote(p.id, true);
  }

  async subscribe(participantId) {
    this.dropRemote(participantId, true);
    const generation = this.generation;
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    this.refCounter += 1;
    const remote = { participantId, pc, ref: `sub-${this.refCounter}`, resourceId: null, stream: new MediaStream() };
    this.remotes.set(participantId, remote);
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addEventListener('track', (e) => {
      remote.stream.addTrack(e.track);
      this.emit('remote', { participantId, stream: remote.stream, pc });
    });
    pc.addEventListener('connectionstatechange', () => {
      if (pc.connectionState === 'failed' && this.remotes.get(participantId) === remote) {
        const p = this.participants.get(participantId);
        if (p && p.online && p.publishing) this.subscribe(participantId);
      }
    });
    this.emit('remote', { participantId, stream: remote.stream, pc });
    const sdp = await completeOffer(pc);
    if (generation !== this.generation || this.remotes.get(participantId) !== remote) return;
    this.send({ type: 'subscribe', ref: remote.ref, participant_id: participantId, sdp });
  }

  dropRemote(participantId, tellServer) {
    const remote = this.remotes.get(participantId);
    if (!remote) return;
    this.remotes.delete(participantId);
    if (tellServer && remote.resourceId) this.send({ type: 'unsubscribe', resource_id: remote.resourceId });
    remote.pc.close();
    this.emit('remote-removed', { participantId });
  }

  // Sets (or replaces) what this browser publishes; publishes at once when connected.
  setLocalStream(stream) {
    this.localStream = stream;
    if (this.welcomed && stream) this.publish(this.generation);
  }

  async publish(generation) {
    if (this.publisher) this.publisher.pc.close();
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    const pub = { pc, generation };
    this.publisher = pub;
    for (const track of this.localStream.getTracks()) {
      // One temporal layer: L1T3 was tried (bench/README.md) and starved the frames the server's
      // quality hints look at, so a dim room read as a covered lens; its latency gain was noise.
      pc.addTransceiver(track, { direction: 'sendonly', streams: [this.localStream] });
    }
    let stalled = null;
    pc.addEventListener('connectionstatechange', () => {
      const current = this.publisher === pub;
      if (pc.connectionState === 'connected' && current) this.publishedAt = Date.now();
      this.emit('publisher-state', pc.connectionState);
      clearTimeout(stalled);
      // A dead media path with a live-looking socket: start over, which publishes again.
      if (pc.connectionState === 'failed' && current) this.restart();
      if (pc.connectionState === 'disconnected' && current) {
        stalled = setTimeout(() => {
          if (this.publisher === pub && pc.connectionState === 'disconnected') this.restart();
        }, DISCONNECTED_LIMIT_MS);
      }
    });
    const sdp = await completeOffer(pc);
    if (this.publisher !== pub || generation !== this.generation) return;
    this.send({ type: 'publish', sdp });
  }

  async replaceTrack(kind, track) {
    if (!this.publisher) return;
    for (const sender of this.publisher.pc.getSenders()) {
      if (sender.track ? sender.track.kind === kind : false) {
        await sender.replaceTrack(track);
        return;
      }
    }
    for (const t of this.publisher.pc.getTransceivers()) {
      if (t.receiver.track && t.receiver.track.kind === kind) {
        await t.sender.replaceTrack(track);
        return;
      }
    }
  }

  sendLocation(coords) {
    const msg = { type: 'location', latitude: coords.latitude, longitude: coords.longitude };
    if (typeof coords.accuracy === 'number' && Number.isFinite(coords.accuracy)) msg.accuracy = coords.accuracy;
    return this.send(msg);
  }

  teardownPeers() {
    if (this.publisher) {
      this.publisher.pc.close();
      this.publisher = null;
    }
    for (const id of [...this.remotes.keys()]) this.dropRemote(id, false);
  }

  stop() {
    this.closed = true;
    clearInterval(this.pingTimer);
    clearTimeout(this.retryTimer);
    window.removeEventListener('online', this.onOnline);
    window.removeEventListener('offline', this.onOffline);
    if (this.publisher) this.send({ type: 'unpublish' });
    this.teardownPeers();
    if (this.ws) {
      this.generation += 1;
      this.ws.close(1000);
      this.ws = null;
    }
    this.setState('closed');
  }
}
