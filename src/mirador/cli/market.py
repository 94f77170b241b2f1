"""The marketplace commands: keys, publish, trust, install, uninstall, packages, search-market."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mirador.settings import load_settings


@click.group()
def keys() -> None:
    """Signing keys for publishing packages (elliptic curve, kept offline)."""


@keys.command("new")
@click.argument("name")
def keys_new(name: str) -> None:
    """Make a key pair NAME under the home's market/keys."""
    from mirador.market.keys import new_key

    made = new_key(load_settings(), name)
    click.echo(f"made key '{name}' (id {made.short}); share its public half with "
               f"'mirador keys export {name}'")


@keys.command("export")
@click.argument("name")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the public key to this file instead of printing it.")
def keys_export(name: str, out: Path | None) -> None:
    """Print (or write) the public key NAME, for others to 'mirador trust'."""
    from mirador.market.keys import export_key

    pem = export_key(load_settings(), name)
    if out is None:
        sys.stdout.write(pem.decode("ascii"))
    else:
        out.write_bytes(pem)
        click.echo(f"wrote {out}")


@keys.command("list")
def keys_list() -> None:
    """This home's own keys and the keys it trusts."""
    from mirador.market.keys import list_keys, trusted_keys

    settings = load_settings()
    for name, key in list_keys(settings):
        click.echo(f"own      {key.short}  {name}")
    for key in trusted_keys(settings):
        click.echo(f"trusted  {key.short}  {key.path}")


@click.command()
@click.argument("key_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def trust(key_file: Path) -> None:
    """Trust packages signed by the public key in KEY_FILE."""
    from mirador.market.keys import trust as add_trust

    key = add_trust(load_settings(), key_file)
    click.echo(f"trusting key {key.short}: packages it signed may be installed")


@click.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--key", "key", required=True, help="A key name (mirador keys new) or PEM file.")
@click.option("--archive", "archive_to", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the signed package as this .tar.gz.")
@click.option("--index", "index_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also put the .tar.gz in this index directory and list it in index.json.")
def publish(directory: Path, key: str, archive_to: Path | None, index_dir: Path | None) -> None:
    """Sign the package in DIRECTORY (writes DIRECTORY/mirador.sig)."""
    from mirador.market.publish import publish as do_publish

    done = do_publish(load_settings(), directory, key, archive_to, index_dir)
    click.echo(f"signed {done.manifest.id} {done.manifest.version} with key "
               f"{done.key_id[:16]}: {done.signature}")
    if done.archive:
        click.echo(f"archive: {done.archive}")
    if done.index:
        click.echo(f"index: {done.index}")


@click.command()
@click.argument("source")
def install(source: str) -> None:
    """Verify, validate and install a package from a directory, .tar.gz or URL."""
    from mirador.market.install import install as do_install

    plan = do_install(load_settings(), source, report=lambda line: click.echo(line))
    m = plan.manifest
    click.echo(f"installed {m.id} {m.version} by {m.author} ({m.licence}): personas "
               f"{', '.join(p.id for p in plan.personas) or 'none'}; chains "
               f"{', '.join(c.id for c in plan.chains) or 'none'}")


@click.command()
@click.argument("package_id")
def uninstall(package_id: str) -> None:
    """Remove an installed package, its personas and chains."""
    from mirador.market.install import uninstall as do_uninstall

    record = do_uninstall(load_settings(), package_id)
    click.echo(f"uninstalled {record['id']} {record['version']}")


@click.command()
def packages() -> None:
    """The installed packages."""
    from mirador.market.install import installed

    records = installed(load_settings())
    if not records:
        click.echo("no packages installed (mirador install PATH|URL)")
    for r in records:
        click.echo(f"{r['id']:<24} {r['version']:<10} {r['author']:<20} key {r['key'][:16]}  "
                   f"personas: {', '.join(r['personas']) or '-'}  chains: "
                   f"{', '.join(r['chains']) or '-'}")


@click.command("search-market")
@click.argument("query", default="")
@click.option("--index", "index", envvar="MIRADOR_MARKET_INDEX", required=True,
              help="The index: a directory or http(s) URL holding index.json "
                   "(or MIRADOR_MARKET_INDEX).")
def search_market(query: str, index: str) -> None:
    """List the packages in an index whose id, author or description match QUERY."""
    from mirador.market.index import read_index, search

    found = search(read_index(index), query)
    if not found:
        click.echo(f"nothing in {index} matches '{query}'")
    for entry in found:
        click.echo(f"{entry.id:<24} {entry.version:<10} {entry.author:<20} base "
                   f"{entry.base_model}  {entry.description}")
        click.echo(f"    mirador install {entry.location(index)}")
