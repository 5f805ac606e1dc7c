"""Checking rule regexes while reading the config: PCRE2's verdict, without JIT compilation.

`aidepy.pcre` compiles every rule with JIT when a `RuleSet` is built. Reading a config only
needs to know whether PCRE2 accepts each regex (and where it fails), and a plain compile is
about ten times cheaper than one with JIT, which matters for configs with a thousand rules.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_ANCHORED = 0x80000000  # PCRE2_ANCHORED, from pcre2.h

_lib = ctypes.CDLL(ctypes.util.find_library("pcre2-8") or "libpcre2-8.so.0")
_compile = _lib.pcre2_compile_8
_compile.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint32, ctypes.POINTER(ctypes.c_int),
                     ctypes.POINTER(ctypes.c_size_t), ctypes.c_void_p]
_compile.restype = ctypes.c_void_p
_free = _lib.pcre2_code_free_8
_free.argtypes = [ctypes.c_void_p]
_free.restype = None
_message = _lib.pcre2_get_error_message_8
_message.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
_message.restype = ctypes.c_int


def regex_error(pattern: bytes) -> str | None:
    """PCRE2's reason for refusing `pattern` as AIDE compiles rules (anchored), or None."""
    code = ctypes.c_int()
    offset = ctypes.c_size_t()
    compiled = _compile(pattern, len(pattern), _ANCHORED, ctypes.byref(code), ctypes.byref(offset), None)
    if compiled:
        _free(compiled)
        return None
    buf = ctypes.create_string_buffer(256)
    _message(code.value, buf, len(buf))
    return f"{buf.value.decode('ascii', 'replace')} (offset {offset.value})"
