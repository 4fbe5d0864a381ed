// The staff's phone: picture-quality hints ("more light", "hold steady") as a large banner while
// the server says they are active. Several may be on at once; the latest one is shown.
import { lang, t } from './i18n.js';
import './i18n_workflows.js';

const KNOWN = new Set(['too_dark', 'blurred', 'frozen', 'covered']);

export class QualityBanner {
  constructor(el) {
    this.el = el;
    this.active = new Map();
  }

  update(msg) {
    if (!msg || typeof msg.hint !== 'string') return;
    this.active.delete(msg.hint);
    if (msg.active) this.active.set(msg.hint, msg.message || {});
    this.render();
  }

  reset() {
    this.active.clear();
    this.render();
  }

  render() {
    const latest = [...this.active.entries()].pop();
    this.el.hidden = !latest;
    document.body.classList.toggle('has-hint', Boolean(latest));
    if (!latest) {
      this.el.textContent = '';
      delete this.el.dataset.hint;
      return;
    }
    const [hint, message] = latest;
    // Our own words first (they follow the page's language); the server's text for a hint we do not know.
    this.el.textContent = KNOWN.has(hint) ? t(`hint_${hint}`) : (message[lang] || message.en || hint);
    this.el.dataset.hint = hint;
  }
}
