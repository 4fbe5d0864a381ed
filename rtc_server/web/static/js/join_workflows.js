// What the participant page adds for the session's workflow: the signer's contract and consent
// sheet, the staff's picture-quality banner. Attached to each CallClient the page starts.
import { SignerSheet } from './consent.js';
import { $ } from './dom.js';
import { QualityBanner } from './quality_banner.js';

let sheet = null;
let banner = null;

export function attachWorkflow(call, me, token, sessionId) {
  if (me.role === 'signer') {
    if (!sheet) sheet = new SignerSheet({ sessionId, token });
    call.addEventListener('welcome', (e) => sheet.setState(e.detail.session && e.detail.session.state));
    call.addEventListener('session', (e) => sheet.setState(e.detail.state));
  } else if (me.role === 'staff') {
    if (!banner) banner = new QualityBanner($('quality-hint'));
    // A reconnected socket is told again about every hint still on, just after its welcome.
    call.addEventListener('welcome', () => banner.reset());
    call.addEventListener('hint', (e) => banner.update(e.detail));
  }
}

export function workflowSnapshot() {
  return {
    hint: banner ? banner.el.dataset.hint || null : null,
    sheetState: sheet ? sheet.state : null,
  };
}
