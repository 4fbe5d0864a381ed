"""The Chromium pages of the benchmark (served by the benchmark itself through Playwright's routing).

The publisher page paints the same clock code as clockcode.py onto a canvas with phone-like content
and publishes `canvas.captureStream(30)` over WHIP; the viewer page watches over WHEP and reads the
code off every presented frame (requestVideoFrameCallback): glass to glass as a user sees it.
"""

COMMON_JS = r"""
const CELLS = 20, ROWS = 2, BITS = 40, MOD = 4294967296;
function checkByte(v) {
  const b0 = Math.floor(v / 16777216) & 255, b1 = (v >>> 16) & 255, b2 = (v >>> 8) & 255, b3 = v & 255;
  return (b0 + 3 * b1 + 5 * b2 + 7 * b3 + 0x5a) & 255;
}
async function negotiate(pc, url, token) {
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise(resolve => {
    if (pc.iceGatheringState === 'complete') return resolve();
    pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
    setTimeout(resolve, 3000);
  });
  for (let attempt = 0; attempt < 8; attempt++) {
    const r = await fetch(url, {method: 'POST', body: pc.localDescription.sdp,
      headers: {'Content-Type': 'application/sdp', 'Authorization': 'Bearer ' + token}});
    const body = await r.text();
    if (r.status === 201) { await pc.setRemoteDescription({type: 'answer', sdp: body}); return; }
    if (r.status !== 400) throw new Error('signaling ' + r.status + ' ' + body);
  }
  throw new Error('signaling refused');
}
"""

PUBLISHER_HTML = (
    """<!doctype html><html><body><canvas id=c width=640 height=480></canvas><script>"""
    + COMMON_JS
    + r"""
const W = 640, H = 480, SIDE = W / CELLS;
const canvas = document.getElementById('c'), ctx = canvas.getContext('2d');
const tex = document.createElement('canvas'); tex.width = 2 * W; tex.height = 2 * H;
(() => {
  const t = tex.getContext('2d'), img = t.createImageData(tex.width, tex.height);
  for (let y = 0; y < tex.height; y++) for (let x = 0; x < tex.width; x++) {
    const block = ((Math.imul((x >> 2) * 73856093 ^ (y >> 2) * 19349663, 2654435761) >>> 24) & 255);
    const v = 40 + (block * 0.6 | 0) + (Math.random() * 24 | 0), i = 4 * (y * tex.width + x);
    img.data[i] = v; img.data[i + 1] = (v * 0.9 + 20) | 0;
    img.data[i + 2] = (v * 0.8 + 30) | 0; img.data[i + 3] = 255;
  }
  t.putImageData(img, 0, 0);
})();
let n = 0;
function paint() {
  n++;
  ctx.drawImage(tex, -((n * 3) % W), -((n * 2) % H));
  ctx.globalCompositeOperation = 'difference'; ctx.fillStyle = '#fff';
  ctx.fillRect((W - 120) * (0.5 + 0.5 * Math.sin(n / 20)),
               80 + (H - 200) * (0.5 + 0.5 * Math.cos(n / 27)), 120, 100);
  ctx.globalCompositeOperation = 'source-over';
  const v = Date.now() % MOD, hi = Math.floor(v / 16777216) & 255, lo = v % 16777216, c = checkByte(v);
  const bits = [];
  for (let i = 7; i >= 0; i--) bits.push((hi >> i) & 1);
  for (let i = 23; i >= 0; i--) bits.push((lo >> i) & 1);
  for (let i = 7; i >= 0; i--) bits.push((c >> i) & 1);
  for (let i = 0; i < BITS; i++) {
    ctx.fillStyle = bits[i] ? '#fff' : '#000';
    ctx.fillRect((i % CELLS) * SIDE, Math.floor(i / CELLS) * SIDE, SIDE, SIDE);
  }
}
setInterval(paint, 1000 / 30); paint();
window.pc = null;
window.start = async (url, token, maxKbps) => {
  const pc = new RTCPeerConnection();
  window.pc = pc;
  const track = canvas.captureStream(30).getVideoTracks()[0];
  track.contentHint = 'motion';
  const tr = pc.addTransceiver(track, {direction: 'sendonly',
    sendEncodings: [{maxBitrate: maxKbps * 1000, maxFramerate: 30}]});
  tr.setCodecPreferences(
    RTCRtpSender.getCapabilities('video').codecs.filter(c => /VP8|rtx|red|ulpfec/.test(c.mimeType)));
  await negotiate(pc, url, token);
};
window.sent = async () => {
  const out = {};
  (await window.pc.getStats()).forEach(s => {
    if (s.type === 'outbound-rtp' && s.kind === 'video') Object.assign(out, {
      bytes: s.bytesSent, frames: s.framesEncoded, frames_sent: s.framesSent,
      keyframes: s.keyFramesEncoded, nacks: s.nackCount, plis: s.pliCount,
      retransmitted_bytes: s.retransmittedBytesSent, width: s.frameWidth, height: s.frameHeight,
      limitation: s.qualityLimitationReason, time: s.timestamp});
    if (s.type === 'remote-inbound-rtp' && s.kind === 'video') Object.assign(out, {
      rtt_ms: s.roundTripTime === undefined ? null : 1000 * s.roundTripTime,
      fraction_lost: s.fractionLost});
  });
  return out;
};
</script></body></html>"""
)

VIEWER_HTML = (
    """<!doctype html><html><body><video id=v autoplay muted playsinline></video><script>"""
    + COMMON_JS
    + r"""
const video = document.getElementById('v');
const scratch = document.createElement('canvas'), sctx = scratch.getContext('2d', {willReadFrequently: true});
window.samples = []; window.unread = 0;
function read(w, h) {
  const side = w / CELLS;
  scratch.width = w; scratch.height = Math.ceil(ROWS * side);
  sctx.drawImage(video, 0, 0, w, h, 0, 0, w, h);
  const data = sctx.getImageData(0, 0, w, scratch.height).data, q = Math.floor(side / 4);
  let hi = 0, lo = 0, c = 0;
  for (let i = 0; i < BITS; i++) {
    const cx = (i % CELLS) * side, cy = Math.floor(i / CELLS) * side;
    let sum = 0, k = 0;
    for (let y = Math.floor(cy + q); y < cy + side - q; y += 2)
    for (let x = Math.floor(cx + q); x < cx + side - q; x += 2) {
      const j = 4 * (y * w + x); sum += 0.299 * data[j] + 0.587 * data[j + 1] + 0.114 * data[j + 2]; k++;
    }
    const mean = sum / k;
    if (Math.abs(mean - 127.5) < 40) return null;
    const bit = mean > 127.5 ? 1 : 0;
    if (i < 8) hi = hi * 2 + bit; else if (i < 32) lo = lo * 2 + bit; else c = c * 2 + bit;
  }
  const v = hi * 16777216 + lo;
  return checkByte(v) === c ? v : null;
}
function onFrame(now, meta) {
  const shown = Date.now();
  const v = read(meta.width, meta.height);
  if (v === null) { window.unread++; window.samples.push([shown, null]); }
  else {
    let age = (shown % MOD) - v; if (age < -MOD / 2) age += MOD;
    window.samples.push([shown, shown - age]);
  }
  video.requestVideoFrameCallback(onFrame);
}
window.start = async (url, token) => {
  const pc = new RTCPeerConnection();
  window.pc = pc;
  pc.addTransceiver('audio', {direction: 'recvonly'});
  pc.addTransceiver('video', {direction: 'recvonly'});
  pc.ontrack = e => { if (e.track.kind === 'video') { video.srcObject = new MediaStream([e.track]); } };
  video.requestVideoFrameCallback(onFrame);
  await negotiate(pc, url, token);
};
window.received = async () => {
  const out = {};
  (await window.pc.getStats()).forEach(s => {
    if (s.type === 'inbound-rtp' && s.kind === 'video') Object.assign(out, {
      frames_decoded: s.framesDecoded, frames_dropped: s.framesDropped, freezes: s.freezeCount,
      jitter_buffer_ms: s.jitterBufferEmittedCount
        ? 1000 * s.jitterBufferDelay / s.jitterBufferEmittedCount : null,
      nacks: s.nackCount, plis: s.pliCount, packets_lost: s.packetsLost,
      width: s.frameWidth, height: s.frameHeight});
  });
  return out;
};
</script></body></html>"""
)
