"""The energy profile in force, as the orchestrator sees it (a `LimitsSource`).

The power state is read when an answer starts (a sysfs read, well under a
millisecond), so unplugging changes the very next answer; `mirador serve` also
watches it and logs each switch (`watch`).
"""

from __future__ import annotations

import logging

from mirador.catalog.manifest import AUTO_CHAIN, Manifest
from mirador.energy.meter import EnergyMeter
from mirador.energy.power import PowerSource, PowerState, PowerWatcher, PsutilPower
from mirador.energy.profiles import Choice, EnergyConfig, OverrideStore, choose
from mirador.errors import ConfigError
from mirador.orchestration.hooks import Limits
from mirador.settings import Settings

log = logging.getLogger("mirador.energy")


class ProfileLimits:
    """Limits from the profile that applies to the power state now (or the pinned one)."""

    def __init__(self, settings: Settings, power: PowerSource | None = None,
                 meter: EnergyMeter | None = None, manifest: Manifest | None = None) -> None:
        self.config = settings.config.energy
        if manifest is not None:
            check_chains(self.config, manifest)
        self.store = OverrideStore(settings.profile_path)
        self.power = power or PsutilPower()
        self.meter = meter or EnergyMeter(self.config.watts_per_core)

    def choice(self, state: PowerState | None = None) -> Choice:
        return choose(self.config, state or self.power.read(), self.store.get())

    def limits(self) -> Limits:
        choice = self.choice()
        p = choice.profile
        return Limits(choice.name, choice.reason, p.deeper_stages, p.max_tokens, p.preload,
                      p.energy_weight, p.energy_budget, p.threads,
                      tuple(p.chains) if p.chains is not None else None, p.speculate,
                      p.prefill)

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


def check_chains(config: EnergyConfig, manifest: Manifest) -> None:
    """ConfigError naming every profile whose `chains` names a chain the manifest lacks."""
    known = [AUTO_CHAIN, *(c.id for c in manifest.chains)]
    problems = [f"profile '{name}' allows chain(s) {', '.join(unknown)}"
                for name, profile in config.all_profiles().items()
                if (unknown := [c for c in profile.chains or () if c not in known])]
    if problems:
        raise ConfigError(f"{'; '.join(problems)}, not in the manifest (known: "
                          f"{', '.join(known)}); fix energy.profiles.<name>.chains in "
                          "config.yaml")
