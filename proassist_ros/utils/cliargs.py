"""Renamed command-line options keep working: the old spelling becomes a hidden alias.

The CLIs name each setting as the node's parameter does (``--theta``, ``--context-strategy``,
``--context-limit``). Users' scripts still pass the earlier spellings (``--threshold``,
``--strategy``, ``--limit``, ...); those are accepted, left out of ``--help``, and each use
prints one line saying what to write instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any


class _DeprecatedAlias(argparse.Action):
    """Store into the new option's ``dest`` and say once, on stderr, that the spelling is old."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, new: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"{parser.prog}: note: {option_string} is deprecated, use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def deprecated_alias(container: Any, old: str, new: argparse.Action, **kwargs: Any) -> argparse.Action:
    """Accept ``old`` as a hidden alias of the option ``new`` (what ``add_argument`` returned).

    ``container`` is the parser or group ``new`` was added to (a mutually exclusive group keeps
    the alias exclusive too). ``type`` / ``choices`` / ``metavar`` default to ``new``'s; the alias
    sets no default of its own, so ``new``'s default stands.
    """
    for key in ("type", "choices", "metavar"):
        kwargs.setdefault(key, getattr(new, key))
    return container.add_argument(old, dest=new.dest, action=_DeprecatedAlias, new=new.option_strings[0],
                                  help=argparse.SUPPRESS, default=argparse.SUPPRESS, **kwargs)
