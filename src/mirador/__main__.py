"""`python -m mirador` runs the CLI."""

from mirador.cli.main import main

main()
