"""Command-line entry points (see :mod:`tailface.cli.main`)."""
