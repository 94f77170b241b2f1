"""Profiles: which applies to a power state, the person's own, a pinned one, bad config."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from mirador.energy.power import PowerState
from mirador.energy.profiles import EnergyConfig, OverrideStore, Profile, When, choose
from mirador.errors import ConfigError

NOON = datetime(2026, 11, 27, 12, 0)
DESKTOP = PowerState(source="test")
PLUGGED = PowerState(80, True, "test")
UNPLUGGED = PowerState(80, False, "test")
LOW = PowerState(20, False, "test")


@pytest.mark.parametrize(("state", "expected"), [
    (DESKTOP, "performance"), (PLUGGED, "performance"), (UNPLUGGED, "balanced"),
    (LOW, "battery"), (PowerState(20, True, "test"), "performance")])
def test_the_built_ins_follow_the_power_state(state: PowerState, expected: str) -> None:
    choice = choose(EnergyConfig(), state, now=NOON)
    assert choice.name == expected and "test" in choice.reason


def test_the_persons_profiles_come_first_and_may_redefine_a_built_in() -> None:
    config = EnergyConfig(profiles={
        "night": Profile(deeper_stages=False, when=When(between="22:00-07:00")),
        "battery": Profile(max_tokens=50, deeper_stages=False, when=When(battery_below=50))})
    assert choose(config, PLUGGED, now=datetime(2026, 1, 1, 23, 30)).name == "night"
    assert choose(config, PLUGGED, now=datetime(2026, 1, 1, 6, 59)).name == "night"
    assert choose(config, PLUGGED, now=NOON).name == "performance"
    assert choose(config, PowerState(40, False, "t"), now=NOON).profile.max_tokens == 50


def test_a_pinned_profile_wins_and_auto_unpins_it(tmp_path: Path) -> None:
    store = OverrideStore(tmp_path / "profile.json")
    store.set("battery")
    choice = choose(EnergyConfig(), PLUGGED, store.get())
    assert choice.name == "battery" and "mirador profile" in choice.reason
    store.set("auto")
    assert store.get() is None and choose(EnergyConfig(), PLUGGED).name == "performance"


def test_bad_profile_config_is_refused_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not a profile .*known: battery"):
        EnergyConfig(profile="turbo")
    with pytest.raises(ValidationError, match="HH:MM-HH:MM"):
        When(between="10pm-7am")
    with pytest.raises(ValidationError, match="extra"):
        Profile(threads_please=2)  # type: ignore[call-arg]
    store = OverrideStore(tmp_path / "profile.json")
    store.path.write_text("{not json")
    with pytest.raises(ConfigError, match="mirador profile auto"):
        store.get()
    with pytest.raises(ConfigError, match="not defined"):
        choose(EnergyConfig(), PLUGGED, "gone")
