"""Selection: which rule, if any, applies to a path and file type, exactly as AIDE decides it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from aidepy.attributes import AttrSet


class RuleKind(Enum):
    """AIDE's three kinds of selection lines."""

    REGULAR = "regular"  # /path attrs
    EQUAL = "equal"  # =/path attrs
    NEGATIVE = "negative"  # !/path


@dataclass(frozen=True)
class Rule:
    """One selection line after evaluation (macros substituted, include rule prefix applied)."""

    kind: RuleKind
    regex: str
    file_types: frozenset[str] | None  # None = unrestricted
    attrs: AttrSet  # empty for NEGATIVE
    origin: str  # "FILE:LINE"
    text: str  # the config line
