# SPDX-License-Identifier: AGPL-3.0-or-later
"""``plom-clustering``: the project's own command line (the demo lives here)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``plom-clustering <command>``."""
    parser = argparse.ArgumentParser(prog="plom-clustering")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="Build a throwaway scanned exam and cluster it.")
    args, rest = parser.parse_known_args(argv)
    if args.command == "demo":
        from .demo.run import main as demo_main

        return demo_main(rest)
    return 2


if __name__ == "__main__":
    sys.exit(main())
