// Camera and microphone: opening them with the right camera, switching cameras, and turning a
// refusal or a missing device into words a customer can act on.

const VIDEO = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30, max: 30 } };

export class MediaProblem extends Error {
  constructor(kind, name) {
    super(`${kind} (${name})`);
    this.kind = kind; // denied | missing | busy | insecure | unknown
    this.name = 'MediaProblem';
    this.errorName = name;
  }
}

export function classify(err) {
  const name = (err && err.name) || 'Error';
  if (name === 'NotAllowedError' || name === 'PermissionDeniedError' || name === 'SecurityError') {
    return new MediaProblem('denied', name);
  }
  if (name === 'NotFoundError' || name === 'DevicesNotFoundError' || name === 'OverconstrainedError') {
    return new MediaProblem('missing', name);
  }
  if (name === 'NotReadableError' || name === 'TrackStartError' || name === 'AbortError') {
    return new MediaProblem('busy', name);
  }
  return new MediaProblem('unknown', name);
}

export async function openCamera({ facing = 'user', audio = true } = {}) {
  if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new MediaProblem('insecure', 'InsecureContext');
  }
  const video = { ...VIDEO, facingMode: { ideal: facing } };
  try {
    return await navigator.mediaDevices.getUserMedia({ audio, video });
  } catch (err) {
    throw classify(err);
  }
}

// A new video track from the other camera; the caller swaps it into the sender.
export async function openOtherCamera(current) {
  const facing = current === 'environment' ? 'user' : 'environment';
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { ...VIDEO, facingMode: { exact: facing } } });
    return { track: stream.getVideoTracks()[0], facing };
  } catch (err) {
    // One camera only (a laptop, a fake device): cycle through whatever video inputs exist.
    const devices = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === 'videoinput');
    if (devices.length < 2) throw classify(err);
    const stream = await navigator.mediaDevices.getUserMedia({ video: { ...VIDEO, deviceId: { exact: devices[1].deviceId } } });
    return { track: stream.getVideoTracks()[0], facing };
  }
}

// Plays a remote stream; when the browser refuses sound without a tap, plays muted and reports it.
export async function playWithSound(video) {
  try {
    video.muted = false;
    await video.play();
    return true;
  } catch (err) {
    if (err && err.name === 'AbortError') return true;
    video.muted = true;
    try { await video.play(); } catch { /* not yet playable; autoplay retries */ }
    return false;
  }
}
