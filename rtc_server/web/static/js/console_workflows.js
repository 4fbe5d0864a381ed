// The kind-specific panels of one console session: signing steps or the inspection's checklist,
// codes, stills and report. SessionView calls onEvent for every audit event and onState on changes.
import { InspectionPanel } from './inspection_panel.js';
import { SigningPanel } from './signing_panel.js';

export function workflowPanel(view) {
  const token = sessionStorage.getItem('rtc.officer.token');
  if (view.detail.kind === 'inspection') return new InspectionPanel(view, token);
  if (view.detail.kind === 'signing') return new SigningPanel(view, token);
  return null;
}
