"""The ``atb`` command line (filled in by the training pipeline)."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``atb``."""
    parser = argparse.ArgumentParser(prog="atb", description="Train, evaluate and serve time-series models.")
    parser.parse_args(argv)
    parser.print_help()
    return 0
