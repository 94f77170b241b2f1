"""The energy profile in force, as the orchestrator sees it (a `LimitsSource`).

The power state is read when an answer starts (a sysfs read, well under a
millisecond), so unplugging changes the very next answer; `mirador serve` also
watches it and logs each switch (`watch`).
"""

from __future__ import annotations

import logging

from mirador.energy.meter import EnergyMeter
from mirador.energy.power import PowerSource, PowerState, PowerWatcher, PsutilPower
from mirador.energy.profiles import Choice, OverrideStore, choose
from mirador.orchestration.hooks import Limits
from mirador.settings import Settings

log = logging.getLogger("mirador.energy")


class ProfileLimits:
    """Limits from the profile that applies to the power state now (or the pinned one)."""

    def __init__(self, settings: Settings, power: PowerSource | None = None,
                 meter: EnergyMeter | None = None) -> None:
        self.config = settings.config.energy
        self.store = OverrideStore(settings.profile_path)
        self.power = power or PsutilPower()
        self.meter = meter or EnergyMeter(self.config.watts_per_core)

    def choice(self, state: PowerState | None = None) -> Choice:
        return choose(self.config, state or self.power.read(), self.store.get())

    def limits(self) -> Limits:
        choice = self.choice()
        p = choice.profile
        return Limits(choice.name, choice.reason, p.deeper_stages, p.max_tokens, p.preload)

    def joules(self) -> tuple[float, str]:
        return self.meter.read(), self.meter.method

    def watch(self) -> PowerWatcher:
        """A watcher (started by the caller) that logs each change of profile."""
        current = [self.choice().name]

        def changed(state: PowerState) -> None:
            choice = self.choice(state)
            if choice.name != current[0]:
                log.info("energy profile: %s -> %s (%s)", current[0], choice.name, choice.reason)
                current[0] = choice.name

        return PowerWatcher(self.power, changed, self.config.poll_seconds)
