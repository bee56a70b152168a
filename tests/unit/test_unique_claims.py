"""Unique options into claims: the counted states come from the transition table, windows cut time
from the epoch, and the slot names queue, key and window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from queue_service.core.errors import InvalidArgument
from queue_service.core.unique import UniqueOptions, claim, window_start
from queue_service.domain import FINISHED_STATES, TRANSITIONS, UNIQUE_REQUIRED_STATES, JobState, Transition

NOW = datetime(2026, 12, 5, 10, 17, 3, tzinfo=UTC)


def test_the_default_states_are_those_a_run_can_still_start_from_or_hold():
    startable = TRANSITIONS[Transition.START][0]
    assert set(UNIQUE_REQUIRED_STATES) == set(startable)
    assert not set(UNIQUE_REQUIRED_STATES) & set(FINISHED_STATES)
    # No transition leads from outside them back in but the operator's redrive.
    re_entries = {
        transition
        for transition, (sources, target) in TRANSITIONS.items()
        if target in UNIQUE_REQUIRED_STATES and not sources <= set(UNIQUE_REQUIRED_STATES)
    }
    assert re_entries == {Transition.REDRIVE}
    assert claim(UniqueOptions("k"), "q", NOW).states == frozenset(UNIQUE_REQUIRED_STATES)


def test_windows_start_at_whole_multiples_from_the_epoch():
    assert window_start(NOW, timedelta(hours=1)) == datetime(2026, 12, 5, 10, tzinfo=UTC)
    assert window_start(NOW, timedelta(days=1)) == datetime(2026, 12, 5, tzinfo=UTC)
    assert window_start(NOW, timedelta(seconds=1)) == NOW


def test_the_slot_differs_by_queue_key_and_window_and_only_by_them():
    hourly = UniqueOptions("k", window=timedelta(hours=1))
    slot = claim(hourly, "q", NOW).slot
    assert len(slot) == 64
    assert claim(hourly, "q", NOW + timedelta(minutes=40)).slot == slot
    assert claim(hourly, "q", NOW + timedelta(minutes=43)).slot != slot  # 11:00, the next window
    assert claim(hourly, "other", NOW).slot != slot
    assert claim(UniqueOptions("k2", window=timedelta(hours=1)), "q", NOW).slot != slot
    assert claim(UniqueOptions("k"), "q", NOW).slot != slot
    assert claim(UniqueOptions("k"), "q", NOW).slot == claim(UniqueOptions("k"), "q", NOW + timedelta(days=900)).slot
    with_completed = frozenset({*UNIQUE_REQUIRED_STATES, JobState.COMPLETED})
    assert claim(UniqueOptions("k", states=with_completed), "q", NOW).slot == claim(UniqueOptions("k"), "q", NOW).slot


@pytest.mark.parametrize(
    ("options", "field"),
    [
        (UniqueOptions(""), "jobs[2].unique.unique_key"),
        (UniqueOptions("k" * 256), "jobs[2].unique.unique_key"),
        (UniqueOptions("k", window=timedelta(seconds=-1)), "jobs[2].unique.window"),
        (UniqueOptions("k", window=timedelta(0)), "jobs[2].unique.window"),
        (UniqueOptions("k", window=timedelta(days=3651)), "jobs[2].unique.window"),
        (UniqueOptions("k", states=frozenset({JobState.COMPLETED, JobState.DEAD_LETTER})), "jobs[2].unique.states"),
        (UniqueOptions("k", states=frozenset()), "jobs[2].unique.states"),
    ],
)
def test_bad_options_name_their_field(options, field):
    with pytest.raises(InvalidArgument) as raised:
        claim(options, "q", NOW, "jobs[2].")
    assert raised.value.field == field
