"""Session state machines, one per kind. Pure: `next_state` answers or raises, nothing else.

inspection: waiting -> live -> ended (or waiting -> ended)
signing:    waiting -> live -> identity_confirmed -> consented -> signed -> ended
            a rejected identity ends the signing; `end` is allowed from every state but ended.
"""

from __future__ import annotations

import enum

from rtc_server.errors import Conflict
from rtc_server.models import SessionKind


class State(enum.StrEnum):
    WAITING = "waiting"
    LIVE = "live"
    IDENTITY_CONFIRMED = "identity_confirmed"
    CONSENTED = "consented"
    SIGNED = "signed"
    ENDED = "ended"


class Action(enum.StrEnum):
    GO_LIVE = "go_live"
    CONFIRM_IDENTITY = "confirm_identity"
    REJECT_IDENTITY = "reject_identity"
    CONSENT = "consent"
    SIGN = "sign"
    END = "end"


_TRANSITIONS: dict[SessionKind, dict[tuple[State, Action], State]] = {
    SessionKind.INSPECTION: {
        (State.WAITING, Action.GO_LIVE): State.LIVE,
        (State.WAITING, Action.END): State.ENDED,
        (State.LIVE, Action.END): State.ENDED,
    },
    SessionKind.SIGNING: {
        (State.WAITING, Action.GO_LIVE): State.LIVE,
        (State.LIVE, Action.CONFIRM_IDENTITY): State.IDENTITY_CONFIRMED,
        (State.LIVE, Action.REJECT_IDENTITY): State.ENDED,
        (State.IDENTITY_CONFIRMED, Action.CONSENT): State.CONSENTED,
        (State.CONSENTED, Action.SIGN): State.SIGNED,
        **{(s, Action.END): State.ENDED for s in State if s is not State.ENDED},
    },
}

_WHY_NOT: dict[Action, str] = {
    Action.GO_LIVE: "the session is not waiting for its participant",
    Action.CONFIRM_IDENTITY: "identity can be confirmed only while the signing is live and unconfirmed",
    Action.REJECT_IDENTITY: "identity can be rejected only while the signing is live and unconfirmed",
    Action.CONSENT: "consent can be given only after the officer has confirmed the signer's identity",
    Action.SIGN: "the document can be signed only after identity is confirmed and consent is given",
    Action.END: "the session has already ended",
}


def next_state(kind: SessionKind, state: str, action: Action) -> State:
    """The state after `action`, or Conflict (409) naming why the action is refused now."""
    try:
        current = State(state)
    except ValueError:
        raise Conflict(f"Unknown session state {state!r}.", code="invalid_state") from None
    target = _TRANSITIONS[kind].get((current, action))
    if target is None:
        if current is State.ENDED and action is not Action.END:
            raise Conflict("The session has ended.", code="session_ended")
        raise Conflict(f"Not allowed in state {current.value}: {_WHY_NOT[action]}.", code="invalid_state")
    return target


def allowed_actions(kind: SessionKind, state: str) -> list[str]:
    return [a.value for (s, a) in _TRANSITIONS[kind] if s.value == state]


def is_active(state: str) -> bool:
    return state != State.ENDED.value
