"""The `bench` command line: one module per command group."""

from bench.cli.main import cli, main

__all__ = ["cli", "main"]
