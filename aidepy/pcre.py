"""AIDE's regular-expression engine: the system's libpcre2-8, called through ctypes.

AIDE compiles every rule with PCRE2 (anchored at the start, byte semantics: Debian's 0.18.3
dropped UTF mode) and matches with soft partial matching, so that a directory whose path is a
prefix of something a rule could match is still entered. Python's `re` has neither partial
matching nor POSIX classes like `[[:digit:]]`; using the very library AIDE uses makes every
regex oddity behave as it does in `aide`.

    >>> rx = Regex(rb"/home/[^/]+/\\.ssh$")
    >>> rx.match(b"/home/al/.ssh"), rx.match(b"/home/al"), rx.match(b"/etc")
    (<Match.FULL: 2>, <Match.PARTIAL: 1>, <Match.NONE: 0>)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from enum import IntEnum
from typing import Any

# Constants from pcre2.h (stable ABI since PCRE2 10.00).
_ANCHORED = 0x80000000
_PARTIAL_SOFT = 0x00000010
_JIT_PARTIAL_SOFT = 0x00000002
_ERROR_PARTIAL = -2
_INFO_FIRSTCODEUNIT = 5
_INFO_FIRSTCODETYPE = 6
_INFO_FIRSTBITMAP = 7
_INFO_MATCHEMPTY = 13


class RegexError(ValueError):
    """A pattern PCRE2 refuses; `offset` is the byte offset PCRE2 names, `message` its reason."""

    def __init__(self, pattern: bytes, offset: int, message: str) -> None:
        super().__init__(f"{message} at offset {offset}")
        self.pattern = pattern
        self.offset = offset
        self.message = message


class Match(IntEnum):
    """Outcome of matching a path against an anchored pattern with soft partial matching."""

    NONE = 0
    PARTIAL = 1  # the path ended while the pattern still needed more: a prefix of a match
    FULL = 2


def _load() -> Any:
    name = ctypes.util.find_library("pcre2-8") or "libpcre2-8.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError as exc:  # pragma: no cover - every Debian system has it (grep needs it)
        raise ImportError(f"aidepy needs libpcre2-8 (Debian package libpcre2-8-0): {exc}") from exc
    vp, sz, u32 = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint32
    lib.pcre2_compile_8.argtypes = [ctypes.c_char_p, sz, u32, ctypes.POINTER(ctypes.c_int),
                                    ctypes.POINTER(sz), vp]
    lib.pcre2_compile_8.restype = vp
    lib.pcre2_jit_compile_8.argtypes = [vp, u32]
    lib.pcre2_jit_compile_8.restype = ctypes.c_int
    # pcre2_match_8 has no argtypes: callers pass ready-made ctypes values, which halves the
    # cost of a call (it runs once per rule tested, millions of times per scan).
    lib.pcre2_match_8.restype = ctypes.c_int
    lib.pcre2_match_data_create_8.argtypes = [u32, vp]
    lib.pcre2_match_data_create_8.restype = vp
    lib.pcre2_match_data_free_8.argtypes = [vp]
    lib.pcre2_match_data_free_8.restype = None
    lib.pcre2_code_free_8.argtypes = [vp]
    lib.pcre2_code_free_8.restype = None
    lib.pcre2_get_error_message_8.argtypes = [ctypes.c_int, ctypes.c_char_p, sz]
    lib.pcre2_get_error_message_8.restype = ctypes.c_int
    lib.pcre2_pattern_info_8.argtypes = [vp, u32, vp]
    lib.pcre2_pattern_info_8.restype = ctypes.c_int
    return lib


_lib = _load()
_match = _lib.pcre2_match_8
_ZERO = ctypes.c_size_t(0)
_OPTIONS = ctypes.c_uint32(_PARTIAL_SOFT)


class _MatchData(threading.local):
    """One ovector per thread: ctypes releases the GIL, so threads must not share it."""

    def __init__(self) -> None:
        self.ptr = ctypes.c_void_p(_lib.pcre2_match_data_create_8(1, None))

    # The free function is bound at definition time: at interpreter exit the module's globals
    # may already be gone when the last thread-local is collected.
    def __del__(self, _free: Any = _lib.pcre2_match_data_free_8) -> None:
        _free(self.ptr)


_match_data = _MatchData()


def _compile(pattern: bytes, options: int) -> int:
    """PCRE2's compiled code for `pattern`, without JIT (the caller frees it); RegexError if
    PCRE2 refuses the pattern."""
    err = ctypes.c_int()
    offset = ctypes.c_size_t()
    code: int | None = _lib.pcre2_compile_8(pattern, len(pattern), options, ctypes.byref(err),
                                            ctypes.byref(offset), None)
    if not code:
        buf = ctypes.create_string_buffer(256)
        _lib.pcre2_get_error_message_8(err.value, buf, len(buf))
        raise RegexError(pattern, offset.value, buf.value.decode("ascii", "replace"))
    return code


def regex_error(pattern: bytes) -> str | None:
    """PCRE2's reason for refusing `pattern` as AIDE compiles rules (anchored), or None. Reading
    a config needs only this verdict: a compile without JIT is about ten times cheaper than a
    `Regex`, which matters for configs with a thousand rules."""
    try:
        _lib.pcre2_code_free_8(_compile(pattern, _ANCHORED))
    except RegexError as exc:
        return f"{exc.message} (offset {exc.offset})"
    return None


def first_bytes(pattern: bytes) -> frozenset[int] | None:
    """The bytes any match of `pattern` (not anchored) must start with, as PCRE2 works them out
    for its own start-of-match optimisation; None when it may match the empty string, when
    PCRE2 cannot tell, or when PCRE2 refuses the pattern."""
    try:
        code = _compile(pattern, 0)
    except RegexError:
        return None
    try:
        empty = ctypes.c_uint32()
        kind = ctypes.c_uint32()
        if (_lib.pcre2_pattern_info_8(code, _INFO_MATCHEMPTY, ctypes.byref(empty)) != 0 or empty.value
                or _lib.pcre2_pattern_info_8(code, _INFO_FIRSTCODETYPE, ctypes.byref(kind)) != 0):
            return None
        if kind.value == 1:  # one fixed first code unit
            unit = ctypes.c_uint32()
            _lib.pcre2_pattern_info_8(code, _INFO_FIRSTCODEUNIT, ctypes.byref(unit))
            return frozenset((unit.value,))
        bitmap = ctypes.c_void_p()
        if kind.value != 0 or _lib.pcre2_pattern_info_8(code, _INFO_FIRSTBITMAP, ctypes.byref(bitmap)) != 0:
            return None
        if not bitmap.value:
            return None
        bits = ctypes.string_at(bitmap.value, 32)
        return frozenset(b for b in range(256) if bits[b >> 3] & (1 << (b & 7)))
    finally:
        _lib.pcre2_code_free_8(code)


class Regex:
    """A pattern compiled the way AIDE compiles rules: anchored at the start, bytes, JIT."""

    __slots__ = ("_code", "pattern")

    def __init__(self, pattern: bytes) -> None:
        self.pattern = pattern
        code = _compile(pattern, _ANCHORED)
        self._code = ctypes.c_void_p(code)
        _lib.pcre2_jit_compile_8(code, _JIT_PARTIAL_SOFT)  # interpreted matching if JIT fails

    def __del__(self, _free: Any = _lib.pcre2_code_free_8) -> None:
        code = getattr(self, "_code", None)
        if code is not None:
            _free(code)

    def __repr__(self) -> str:
        return f"Regex({self.pattern!r})"

    def match(self, subject: bytes) -> Match:
        """Match `subject` from its start: FULL, PARTIAL (a prefix of a possible match) or NONE."""
        rc = _match(self._code, subject, ctypes.c_size_t(len(subject)), _ZERO, _OPTIONS, _match_data.ptr,
                    None)
        if rc >= 0:
            return Match.FULL
        return Match.PARTIAL if rc == _ERROR_PARTIAL else Match.NONE
