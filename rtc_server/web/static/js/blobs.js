// Files behind a bearer token (stills, contracts, reports, evidence): fetched with the token in the
// Authorization header into a Blob, shown or saved through an object URL. Never a token in a URL.
import { ApiError } from './api.js';

export async function fetchBlob(token, path) {
  let response;
  try {
    response = await fetch(path, {
      headers: { Authorization: `Bearer ${token}` }, credentials: 'omit', cache: 'no-store',
    });
  } catch (err) {
    throw new ApiError(0, 'network', String(err && err.message || err));
  }
  if (!response.ok) {
    let error = {};
    if ((response.headers.get('Content-Type') || '').includes('application/json')) {
      error = ((await response.json()) || {}).error || {};
    }
    throw new ApiError(response.status, error.code || 'http_error', error.message || response.statusText);
  }
  return response.blob();
}

// The server's file name from Content-Disposition is not readable here (a blob keeps no headers),
// so callers name the file.
export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  a.rel = 'noopener';
  document.body.append(a);
  a.click();
  a.remove();
  // Revoked later, not at once: some browsers start the download asynchronously.
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

export async function download(token, path, filename) {
  saveBlob(await fetchBlob(token, path), filename);
}
