// The audit trail in words: "Staff joined", "Officer started watching Staff". The raw event type
// stays visible beside it, as that is what the evidence package and auditors refer to.
import { t } from './i18n.js';

// Event type -> i18n key of its sentence. Sentences may use {who} (the participant concerned) and
// {source} (the participant watched).
const SENTENCES = {
  'session.created': 'ev_session_created',
  'session.live': 'ev_session_live',
  'session.ended': 'ev_session_ended',
  'invite.created': 'ev_invite_created',
  'participant.added': 'ev_participant_added',
  'participant.joined': 'ev_participant_joined',
  'participant.left': 'ev_participant_left',
  'participant.location': 'ev_participant_location',
  'media.published': 'ev_media_published',
  'media.unpublished': 'ev_media_unpublished',
  'media.watching': 'ev_media_watching',
  'media.stopped_watching': 'ev_media_stopped_watching',
  'code.detected': 'ev_code_detected',
  'quality.hint': 'ev_quality_hint',
  'recording.sealed': 'ev_recording_sealed',
  'recording.failed': 'ev_recording_failed',
  'recording.frames_dropped': 'ev_recording_frames_dropped',
  'snapshot.taken': 'ev_snapshot_taken',
  'report.issued': 'ev_report_issued',
  'report.failed': 'ev_report_failed',
  'signing.started': 'ev_signing_started',
  'signing.identity_confirmed': 'ev_identity_confirmed',
  'signing.identity_rejected': 'ev_identity_rejected',
  'signing.consent_given': 'ev_consent_given',
  'signing.signed': 'ev_signed',
  'signing.failed': 'ev_signing_failed',
};

// Details worth a line of their own; ids and hashes are in the audit trail, not on screen.
const SHOWN = ['value', 'format', 'sku', 'hint', 'reason', 'latitude', 'longitude', 'accuracy'];

export function describe(event, nameOf) {
  const data = event.data || {};
  const who = nameOf(data.participant_id) || event.actor || '';
  const source = nameOf(data.source) || '';
  const key = SENTENCES[event.type];
  const title = key ? t(key, { who, source }) : event.type;
  const details = SHOWN.filter((k) => data[k] !== undefined && data[k] !== null && typeof data[k] !== 'object')
    .map((k) => {
      const v = data[k];
      if (typeof v === 'number' && !Number.isInteger(v)) return `${k}: ${v.toFixed(k === 'accuracy' ? 0 : 5)}`;
      return `${k}: ${v}`;
    });
  return { title, details: details.join(' · ') };
}
