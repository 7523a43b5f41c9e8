"""The ``jindou bench`` arguments (light: imported whenever the CLI parses)."""

from __future__ import annotations

import argparse
from pathlib import Path

SCENARIO_IDS = tuple(f"B{i}" for i in range(1, 10))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "scenarios",
        nargs="*",
        metavar="SCENARIO",
        help=f"{SCENARIO_IDS[0]}..{SCENARIO_IDS[-1]} (default: all); on request "
        "only: B1X, B2X (B1, B2 with the appends answered in the api, not by Redis)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a few seconds per scenario (CI smoke test)",
    )
    parser.add_argument(
        "--json", type=Path, metavar="FILE", help="write every figure to FILE"
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=3,
        help="measured runs per figure (median; default 3)",
    )
    parser.add_argument(
        "--duration", type=float, help="seconds per measured run (default 8, quick 2)"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the scratch dir (process logs, redis data)",
    )
