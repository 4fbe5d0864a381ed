"""The state machines refuse every transition they do not list."""

from __future__ import annotations

import pytest

from rtc_server.errors import Conflict
from rtc_server.lifecycle import Action, State, allowed_actions, next_state
from rtc_server.models import SessionKind

INS, S = SessionKind.INSPECTION, SessionKind.SIGNING


def test_inspection_path() -> None:
    assert next_state(INS, "waiting", Action.GO_LIVE) is State.LIVE
    assert next_state(INS, "live", Action.END) is State.ENDED
    assert next_state(INS, "waiting", Action.END) is State.ENDED
    for action in (Action.CONFIRM_IDENTITY, Action.CONSENT, Action.SIGN):
        with pytest.raises(Conflict):
            next_state(INS, "live", action)


def test_signing_happy_path_in_order() -> None:
    state = "waiting"
    for action in (Action.GO_LIVE, Action.CONFIRM_IDENTITY, Action.CONSENT, Action.SIGN, Action.END):
        state = next_state(S, state, action).value
    assert state == "ended"


@pytest.mark.parametrize(
    ("state", "action"),
    [
        ("waiting", Action.CONFIRM_IDENTITY),
        ("live", Action.CONSENT),
        ("live", Action.SIGN),
        ("identity_confirmed", Action.SIGN),
        ("consented", Action.CONFIRM_IDENTITY),
        ("signed", Action.SIGN),
        ("live", Action.GO_LIVE),
    ],
)
def test_signing_refuses_out_of_order(state: str, action: Action) -> None:
    with pytest.raises(Conflict) as info:
        next_state(S, state, action)
    assert info.value.status == 409 and info.value.code == "invalid_state"


def test_ended_is_final() -> None:
    for kind in (INS, S):
        assert allowed_actions(kind, "ended") == []
        with pytest.raises(Conflict) as info:
            next_state(kind, "ended", Action.GO_LIVE)
        assert info.value.code == "session_ended"


def test_rejected_identity_ends_the_signing() -> None:
    assert next_state(S, "live", Action.REJECT_IDENTITY) is State.ENDED
