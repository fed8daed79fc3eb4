"""``python -m tui [--runs-dir DIR]``: the workbench without the CLI's argument parsing."""

from __future__ import annotations

import argparse
import sys

from .app import main

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m tui", description="the artq TUI workbench")
    parser.add_argument("--runs-dir", default=None, help="run folders to browse (default: ./runs)")
    sys.exit(main(parser.parse_args().runs_dir))
