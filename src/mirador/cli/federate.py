"""`mirador federate`: join (or coordinate) a federation improving a shared adapter on Flower."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mirador.errors import FederationError
from mirador.settings import FederationConfig, Settings, load_settings

if TYPE_CHECKING:
    from mirador.federation.plan import RoundPlan


@click.command()
@click.option("--dry-run", is_flag=True, help="Train one round locally and show what would "
              "be sent (size, clipping, noise, epsilon); connect to nothing.")
@click.option("--coordinate", is_flag=True, help="Also run the SuperLink here and submit the "
              "federation's rounds; other peers join with --superlink HOST:PORT.")
@click.option("--superlink", help="The SuperLink host:port (default: federation.superlink).")
@click.option("--persona", help="Whose base the shared adapter is for (default: "
              "federation.persona).")
@click.option("--rounds", type=click.IntRange(1, 1000), help="Rounds (--coordinate).")
@click.option("--peers", type=click.IntRange(2), help="Peers a round waits for.")
@click.option("--noise", type=click.FloatRange(0, 100), help="DP noise multiplier (0: off).")
@click.option("--clip", type=click.FloatRange(0, min_open=True), help="Clipping norm.")
@click.option("--yes", is_flag=True, help="Opt in for this run (federation.enabled: true "
              "in config.yaml opts in for good).")
def federate(dry_run: bool, coordinate: bool, superlink: str | None, persona: str | None,
             rounds: int | None, peers: int | None, noise: float | None, clip: float | None,
             yes: bool) -> None:
    """Improve a shared LoRA adapter with other Mirador peers, sending only clipped,
    noised, securely aggregated adapter updates (never your data).

    Each peer trains on its own rated answers; Flower averages the updates (FedAvg) under
    SecAgg+ and central differential privacy. The log of every round is kept in
    ~/.mirador/federation/rounds.jsonl, the shared adapter in federation/adapter.gguf.
    """
    from mirador.federation import WHAT_LEAVES
    from mirador.federation.plan import RoundPlan

    settings = load_settings()
    section = settings.config.federation
    changes = {k: v for k, v in (("rounds", rounds), ("peers", peers),
                                 ("noise_multiplier", noise), ("clipping_norm", clip))
               if v is not None}
    plan = RoundPlan.from_settings(section, **changes)
    link = superlink or section.superlink
    click.echo(WHAT_LEAVES.format(clip=plan.clipping_norm, noise=plan.noise_multiplier,
                                  superlink=link if not dry_run else "(none: dry run)"))
    if dry_run:
        _dry_run(settings, persona or section.persona, plan)
        return
    if changes and not (coordinate or dry_run):
        raise FederationError(f"{', '.join('--' + _FLAGS[k] for k in changes)}: a peer that "
                              "joins follows the coordinator's plan; give these with "
                              "--coordinate (or --dry-run)")
    if not (yes or section.enabled):
        raise FederationError("federation is opt-in: nothing was sent. Run again with --yes, "
                              "or set `federation: {enabled: true}` in config.yaml")
    _join(settings, section, plan, link, persona or section.persona, coordinate)


_FLAGS = {"rounds": "rounds", "peers": "peers", "noise_multiplier": "noise",
          "clipping_norm": "clip"}


def _dry_run(settings: Settings, persona: str, plan: RoundPlan) -> None:
    from mirador.federation.dryrun import dry_run

    click.echo("\ndry run: training one round locally; nothing is sent ...", err=True)
    found = dry_run(settings, persona, plan, None, plan.peers)
    click.echo(f"\nexamples trained on      {found.examples}")
    click.echo(f"update                   {found.parameters:,} numbers, "
               f"{found.update_bytes / 1e6:.2f} MB (float32)")
    click.echo(f"update norm              {found.update_norm:.4f} -> clipped to "
               f"{found.clipped_norm:.4f}")
    click.echo(f"noise on the average     std {found.noise_std:.3g} per number, norm "
               f"{found.noise_norm:.4g} (clipped update / noise = {found.signal_to_noise:.3g})")
    click.echo(f"privacy (delta {found.delta:g})  epsilon {found.epsilon_round:.3g} per round, "
               f"{found.epsilon_total:.3g} after {found.rounds} rounds")


def _join(settings: Settings, section: FederationConfig, plan: RoundPlan, link: str,
          persona: str, coordinate: bool) -> None:
    from mirador.federation import launch

    root = settings.ensure_home() / "federation"
    tls = Path(section.root_certificates).expanduser() if section.root_certificates else None
    if coordinate and tls is not None:
        raise FederationError("--coordinate starts a loopback SuperLink without TLS; for TLS "
                              "start `flower-superlink` with its --ssl-* options yourself "
                              "and join it with --superlink")
    launch.check_address(link, launch.Tls(tls) if tls else None)
    launch.flower_command("flower-supernode")  # the federation extra, before anything starts
    (root / "flwr").mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen[bytes]] = []
    signal.signal(signal.SIGTERM, _stop)  # a terminated peer stops its Flower processes too
    try:
        if coordinate:
            processes.append(launch.superlink(link, root / "coordinator" / "flwr",
                                              output=(root / "superlink.log").open("ab")))
        node = {"home": str(settings.home), "persona": persona}
        processes.append(launch.supernode(link, launch.free_port(), node, root / "flwr", tls,
                                          output=(root / "supernode.log").open("ab")))
        click.echo(f"\njoined {link} as a peer; Flower's log: {root / 'supernode.log'}",
                   err=True)
        if coordinate:
            _submit(root, link, plan)
        else:
            click.echo("waiting for rounds; Ctrl-C leaves the federation", err=True)
            code = processes[-1].wait()
            if code:
                raise launch.node_stopped(code, root / "supernode.log")
    finally:
        for process in processes:
            process.terminate()


def _stop(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so the `finally` that stops Flower's processes runs
    (they run in their own sessions: nothing else would stop them)."""
    raise SystemExit(128 + signum)


def _submit(root: Path, link: str, plan: RoundPlan) -> None:
    from mirador.federation import launch

    out = root / "coordinator" / time.strftime("%Y%m%d-%H%M%S")
    home = root / "coordinator" / "flwr"
    launch.wait_listening(link, 60.0)
    launch.write_connection(home, link, None)
    done = launch.submit(replace(plan, out_dir=str(out)), home, output=sys.stdout)
    if done.returncode:
        raise FederationError(f"`flwr run` failed (exit {done.returncode}); see "
                              f"{root / 'superlink.log'}")
    click.echo(f"\nthe rounds' log and each round's adapter: {out}")
