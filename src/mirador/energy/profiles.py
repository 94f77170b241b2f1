"""Energy profiles: what may run, chosen by the power state or by the person.

Built in, checked in this order after the person's own (config.yaml `energy.profiles`,
which may also redefine a built-in by name):

    battery      on battery below 30%: the first stage only, short answers, no preload,
                 no speculative decoding
    balanced     on battery: every stage, answers bounded, preload on
    performance  plugged in, or no battery at all: everything

The first profile whose `when` holds applies (`auto`); `mirador profile NAME` pins one
until `mirador profile auto`. A profile without `when` applies only when named.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mirador.atomic import write_text_atomic
from mirador.energy.power import PowerState
from mirador.errors import ConfigError

AUTO = "auto"
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class When(_Strict):
    """When a profile applies: every condition given must hold (none given: always)."""

    on_battery: bool | None = Field(default=None, description="True: running on battery; "
                                    "False: plugged in or no battery.")
    battery_below: float | None = Field(default=None, gt=0, le=100, description="On battery "
                                        "with less than this percent left.")
    between: str | None = Field(default=None, description="Local time 'HH:MM-HH:MM' "
                                "(may wrap past midnight).")

    @field_validator("between")
    @classmethod
    def _clock_range(cls, value: str | None) -> str | None:
        if value is not None and not _CLOCK.match(value):
            raise ValueError(f"'{value}' is not a time range; write it as 'HH:MM-HH:MM', "
                             "e.g. '22:00-07:00'")
        return value

    def holds(self, state: PowerState, now: datetime) -> bool:
        if self.on_battery is not None and state.on_battery != self.on_battery:
            return False
        if self.battery_below is not None and not (
                state.on_battery and state.percent is not None
                and state.percent < self.battery_below):
            return False
        return self.between is None or _within(self.between, now.time())

    def describe(self) -> str:
        parts = []
        if self.battery_below is not None:
            parts.append(f"on battery below {self.battery_below:g}%")
        elif self.on_battery is not None:
            parts.append("on battery" if self.on_battery else "plugged in (or no battery)")
        if self.between is not None:
            parts.append(f"between {self.between}")
        return " and ".join(parts) or "always"


class Profile(_Strict):
    """What an answer may use while a profile applies."""

    description: str = ""
    deeper_stages: bool = Field(default=True, description="False: only the first stage "
                                "runs (no analysis or synthesis).")
    max_tokens: int | None = Field(default=None, ge=1, description="At most this many "
                                   "tokens per stage.")
    preload: bool = Field(default=True, description="Load models a query will likely need "
                          "before it is sent.")
    energy_weight: float = Field(default=0.0, ge=0, le=1, description="Quality per watt: "
                                 "how much of a good-rating chance the most energy-hungry "
                                 "candidate chain gives up (0: energy is ignored).")
    energy_budget: float | None = Field(default=None, gt=0, description="Only chains whose "
                                        "answers cost at most this many joules on average "
                                        "(unmeasured chains may still run).")
    threads: int | None = Field(default=None, ge=1, le=256, description="CPU threads "
                                "llama.cpp models run with (none: "
                                "backends.llamacpp.n_threads); set per request, no reload.")
    chains: list[str] | None = Field(default=None, min_length=1, description="The only "
                                     "chains the learner and routing may pick ('auto' is "
                                     "the complexity routing); none: every chain.")
    speculate: bool = Field(default=True, description="False: no speculation (personas' "
                            "speculative decoding, prefill): it spends energy to buy time.")
    prefill: bool = Field(default=False, description="Read the likely first stage's prompt "
                          "while the chain is chosen (off: it did not pay when measured).")
    when: When | None = Field(default=None, description="When `auto` picks this profile; "
                              "none: only when named.")


BUILTIN: dict[str, Profile] = {
    "battery": Profile(description="low battery: the quick answer only",
                       deeper_stages=False, max_tokens=160, preload=False,
                       energy_budget=30.0, speculate=False, when=When(battery_below=30)),
    "balanced": Profile(description="on battery: every stage, bounded, quality per watt",
                        max_tokens=320, energy_weight=0.3, when=When(on_battery=True)),
    "performance": Profile(description="plugged in: everything", when=When()),
}


class EnergyConfig(_Strict):
    """The `energy` section of config.yaml."""

    profile: str = Field(default=AUTO, description="'auto' (follow the power state) or a "
                         "profile's name.")
    profiles: dict[str, Profile] = Field(default_factory=dict, description="Your own "
                                         "profiles (checked before the built-ins), or a "
                                         "built-in redefined by name.")
    watts_per_core: float = Field(default=7.5, gt=0, le=500, description="For the energy "
                                  "estimate where RAPL cannot be read: watts one busy core "
                                  "draws.")
    poll_seconds: float = Field(default=1.0, gt=0, le=60, description="How often the power "
                                "state is read while Mirador runs.")

    @model_validator(mode="after")
    def _known_profile(self) -> EnergyConfig:
        if self.profile != AUTO and self.profile not in self.all_profiles():
            raise ValueError(f"energy.profile '{self.profile}' is not a profile (known: "
                             f"{', '.join(self.all_profiles())}); use one of them or 'auto'")
        return self

    def all_profiles(self) -> dict[str, Profile]:
        """Every profile, in the order `auto` checks them: the person's, then built-ins."""
        ordered = dict(self.profiles)
        ordered.update({name: p for name, p in BUILTIN.items() if name not in ordered})
        return ordered


@dataclass(frozen=True)
class Choice:
    """The profile in force, and why."""

    name: str
    profile: Profile
    reason: str


def choose(config: EnergyConfig, state: PowerState, override: str | None = None,
           now: datetime | None = None) -> Choice:
    """The profile that applies: the override (from `mirador profile NAME`), else the
    config's named profile, else the first whose `when` holds for this power state."""
    profiles = config.all_profiles()
    named = override if override not in (None, AUTO) else config.profile
    if named != AUTO:
        if named not in profiles:
            raise ConfigError(f"profile '{named}' is not defined (known: "
                              f"{', '.join(profiles)}); run `mirador profile auto` or pick one")
        how = "chosen with `mirador profile`" if override not in (None, AUTO) else \
            "set in config.yaml (energy.profile)"
        return Choice(named, profiles[named], f"{how}; {state.describe()}")
    now = now or datetime.now()
    for name, profile in profiles.items():
        if profile.when is not None and profile.when.holds(state, now):
            return Choice(name, profile, f"{profile.when.describe()}: {state.describe()}")
    return Choice("performance", BUILTIN["performance"], f"no rule held: {state.describe()}")


class OverrideStore:
    """The profile the person pinned with `mirador profile NAME`, kept under the home."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def get(self) -> str | None:
        try:
            value = json.loads(self.path.read_text()).get("profile")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, AttributeError) as exc:
            raise ConfigError(f"{self.path} is unreadable ({exc}); delete it or run "
                              "`mirador profile auto`") from exc
        return value if isinstance(value, str) and value != AUTO else None

    def set(self, name: str) -> None:
        if name == AUTO:
            self.path.unlink(missing_ok=True)
            return
        write_text_atomic(self.path, json.dumps({"profile": name}) + "\n")


def _within(span: str, now: time) -> bool:
    start, end = (time.fromisoformat(part) for part in span.split("-"))
    return start <= now < end if start <= end else now >= start or now < end
