"""``artq cache``: where the shared run cache is, how big, and emptying it.

``artq cache info`` prints the folder, entries, size and bound; ``artq cache clear``
removes every entry no running job holds.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "cache",
        help="show or clear the cache runs share",
        description="Runs share exported models, FP32/FP16 conversions and their evaluations "
        "through a cache in the user's cache folder ($ARTQ_CACHE_DIR, else "
        "$XDG_CACHE_HOME/artq, else ~/.cache/artq), bounded by $ARTQ_CACHE_MAX_MB "
        "(default 2048); the least recently used entries go first.",
    )
    p.add_argument("action", choices=("info", "clear"), help="info: size and place; clear: empty it")
    p.add_argument("--cache-dir", default=None, metavar="DIR",
                   help="the cache folder (default: the user's cache folder)")
    return p


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def run(args: argparse.Namespace) -> int:
    from ..cache import StageCache, default_root  # noqa: PLC0415

    root = Path(args.cache_dir) if args.cache_dir else default_root()
    if args.action == "clear":
        if not root.is_dir():
            print(f"{root}: no cache yet")
            return 0
        removed = StageCache(root).clear()
        print(f"{root}: removed {removed} entr{'y' if removed == 1 else 'ies'}")
        return 0
    if not root.is_dir():
        print(f"{root}: no cache yet (runs create it)")
        return 0
    info = StageCache(root).info()
    print(f"{info.root}: {info.entries} entr{'y' if info.entries == 1 else 'ies'}, "
          f"{_mib(info.bytes)} of {_mib(info.limit)}")
    return 0
