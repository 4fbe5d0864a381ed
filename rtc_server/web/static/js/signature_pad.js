// A handwritten signature drawn with a finger, a pen or the mouse. Strokes are kept as points in
// the box's own 0..1 coordinates, so the export is the same fixed-size PNG on any screen (a phone's
// device pixel ratio never inflates it past the server's limit).
import { h } from './dom.js';

export const EXPORT_WIDTH = 600;
export const EXPORT_HEIGHT = 200;
export const MAX_PNG_BYTES = 200 * 1024;
const INK = '#0b2a6b';
// Strokes of a real signature: a few hundred points. A cap keeps a scribbling child from growing it.
const MAX_POINTS = 20000;

export class SignaturePad extends EventTarget {
  constructor({ label }) {
    super();
    this.strokes = [];
    this.current = null;
    this.points = 0;
    this.canvas = h('canvas', { class: 'sig-canvas', role: 'img', 'aria-label': label, tabindex: '0' });
    this.el = h('div', { class: 'sig-box' }, this.canvas, h('div', { class: 'sig-line', 'aria-hidden': 'true' }));
    this.canvas.addEventListener('pointerdown', (e) => this.down(e));
    this.canvas.addEventListener('pointermove', (e) => this.move(e));
    this.canvas.addEventListener('pointerup', (e) => this.up(e));
    this.canvas.addEventListener('pointercancel', (e) => this.up(e));
    this.resizeObserver = new ResizeObserver(() => this.redraw());
    this.resizeObserver.observe(this.canvas);
  }

  get empty() { return this.strokes.length === 0; }

  point(e) {
    const r = this.canvas.getBoundingClientRect();
    return [Math.min(1, Math.max(0, (e.clientX - r.left) / r.width)), Math.min(1, Math.max(0, (e.clientY - r.top) / r.height))];
  }

  down(e) {
    if (this.disabled || this.points >= MAX_POINTS) return;
    e.preventDefault();
    this.canvas.setPointerCapture(e.pointerId);
    this.current = [this.point(e)];
    this.strokes.push(this.current);
    this.points += 1;
    this.redraw();
  }

  move(e) {
    if (!this.current || this.points >= MAX_POINTS) return;
    e.preventDefault();
    // Coalesced events give the full path a fast finger draws between two animation frames.
    const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
    for (const ev of events.length ? events : [e]) this.current.push(this.point(ev));
    this.points += events.length || 1;
    this.redraw();
  }

  up() {
    if (!this.current) return;
    this.current = null;
    this.dispatchEvent(new Event('change'));
  }

  clear() {
    this.strokes = [];
    this.current = null;
    this.points = 0;
    this.redraw();
    this.dispatchEvent(new Event('change'));
  }

  setDisabled(disabled) {
    this.disabled = disabled;
    this.el.classList.toggle('disabled', disabled);
  }

  redraw() {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(c.clientWidth * dpr));
    const hgt = Math.max(1, Math.round(c.clientHeight * dpr));
    if (c.width !== w || c.height !== hgt) { c.width = w; c.height = hgt; }
    paint(c.getContext('2d'), this.strokes, w, hgt, Math.max(2, 2.5 * dpr));
  }

  // PNG bytes (transparent background), or null when nothing is drawn.
  async toPng(width = EXPORT_WIDTH, height = EXPORT_HEIGHT) {
    if (this.empty) return null;
    const c = document.createElement('canvas');
    c.width = width;
    c.height = height;
    paint(c.getContext('2d'), this.strokes, width, height, Math.max(2, width / 160));
    const blob = await new Promise((resolve) => c.toBlob(resolve, 'image/png'));
    if (!blob) return null;
    if (blob.size > MAX_PNG_BYTES && width > 200) return this.toPng(Math.round(width * 0.7), Math.round(height * 0.7));
    return blob;
  }

  close() { this.resizeObserver.disconnect(); }
}

function paint(ctx, strokes, w, h, lineWidth) {
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = INK;
  ctx.fillStyle = INK;
  ctx.lineWidth = lineWidth;
  ctx.lineCap = 'round';
  ctx.lineJoin = 'round';
  for (const stroke of strokes) {
    if (stroke.length === 1) {
      ctx.beginPath();
      ctx.arc(stroke[0][0] * w, stroke[0][1] * h, lineWidth / 2, 0, Math.PI * 2);
      ctx.fill();
      continue;
    }
    ctx.beginPath();
    ctx.moveTo(stroke[0][0] * w, stroke[0][1] * h);
    for (let i = 1; i < stroke.length; i += 1) ctx.lineTo(stroke[i][0] * w, stroke[i][1] * h);
    ctx.stroke();
  }
}

export async function blobToBase64(blob) {
  const bytes = new Uint8Array(await blob.arrayBuffer());
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}
