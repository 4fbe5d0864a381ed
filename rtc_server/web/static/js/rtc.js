// Peer-connection helpers: non-trickle offers (the server answers a complete offer) and
// connection-quality figures from getStats.

const GATHER_CAP_MS = 2000;

// The server takes no trickled candidates: wait until gathering completes, capped so that an
// unreachable STUN/TURN server costs two seconds rather than the browser's own long timeout.
export function iceGathered(pc, capMs = GATHER_CAP_MS) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    };
    const check = () => { if (pc.iceGatheringState === 'complete') done(); };
    const timer = setTimeout(done, capMs);
    pc.addEventListener('icegatheringstatechange', check);
  });
}

export async function completeOffer(pc) {
  await pc.setLocalDescription(await pc.createOffer());
  await iceGathered(pc);
  return pc.localDescription.sdp;
}

export function toIceServers(list) {
  if (!Array.isArray(list)) return [];
  return list.filter((s) => s && s.urls).map((s) => {
    const out = { urls: s.urls };
    if (s.username) out.username = s.username;
    if (s.credential) out.credential = s.credential;
    return out;
  });
}

function selectedPair(report) {
  let pair = null;
  report.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId);
  });
  if (!pair) {
    report.forEach((s) => {
      if (s.type === 'candidate-pair' && s.state === 'succeeded' && (s.nominated || s.selected)) pair = s;
    });
  }
  return pair;
}

// Figures for one tile. `prev` is the previous sample of the same connection (for rates).
export async function sampleStats(pc, direction, prev) {
  const report = await pc.getStats();
  const now = performance.now();
  const out = {
    at: now, rttMs: null, lossPct: null, kbps: null, fps: null, width: 0, height: 0,
    framesDecoded: 0, audioBytes: 0, videoBytes: 0, packets: 0, lost: 0,
  };
  const pair = selectedPair(report);
  if (pair && typeof pair.currentRoundTripTime === 'number') out.rttMs = pair.currentRoundTripTime * 1000;
  report.forEach((s) => {
    if (direction === 'in' && s.type === 'inbound-rtp') {
      if (s.kind === 'video') {
        out.videoBytes = s.bytesReceived || 0;
        out.framesDecoded = s.framesDecoded || 0;
        out.fps = s.framesPerSecond ?? null;
        out.width = s.frameWidth || 0;
        out.height = s.frameHeight || 0;
      } else if (s.kind === 'audio') {
        out.audioBytes = s.bytesReceived || 0;
      }
      out.packets += s.packetsReceived || 0;
      out.lost += Math.max(0, s.packetsLost || 0);
    } else if (direction === 'out' && s.type === 'outbound-rtp') {
      if (s.kind === 'video') {
        out.videoBytes += s.bytesSent || 0;
        if (s.framesPerSecond !== undefined) out.fps = s.framesPerSecond;
        out.width = Math.max(out.width, s.frameWidth || 0);
        out.height = Math.max(out.height, s.frameHeight || 0);
      } else if (s.kind === 'audio') {
        out.audioBytes += s.bytesSent || 0;
      }
      out.packets += s.packetsSent || 0;
    } else if (direction === 'out' && s.type === 'remote-inbound-rtp') {
      out.lost += Math.max(0, s.packetsLost || 0);
      if (out.rttMs === null && typeof s.roundTripTime === 'number') out.rttMs = s.roundTripTime * 1000;
    }
  });
  if (prev) {
    const seconds = (now - prev.at) / 1000;
    const bytes = out.videoBytes + out.audioBytes - prev.videoBytes - prev.audioBytes;
    if (seconds > 0 && bytes >= 0) out.kbps = (bytes * 8) / 1000 / seconds;
    const packets = out.packets - prev.packets;
    const lost = out.lost - prev.lost;
    if (packets + lost > 0 && lost >= 0) out.lossPct = (100 * lost) / (packets + lost);
    else if (packets >= 0) out.lossPct = 0;
  }
  return out;
}
