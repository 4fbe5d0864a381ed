// Draws a QR code on a canvas, locally: the invite URL carries a secret and goes to no QR service.
import qrcode from '/static/vendor/qrcode-generator/qrcode.js';

export function drawQr(canvas, text) {
  const qr = qrcode(0, 'M');
  qr.addData(text);
  qr.make();
  const count = qr.getModuleCount();
  const quiet = 4;
  const cells = count + quiet * 2;
  const scale = Math.max(2, Math.floor(256 / cells));
  canvas.width = cells * scale;
  canvas.height = cells * scale;
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = '#000000';
  for (let r = 0; r < count; r += 1) {
    for (let c = 0; c < count; c += 1) {
      if (qr.isDark(r, c)) ctx.fillRect((c + quiet) * scale, (r + quiet) * scale, scale, scale);
    }
  }
  canvas.dataset.modules = String(count);
}
