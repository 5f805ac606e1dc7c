"""Failures an admin can act on, each with the exit code the CLI returns for it.

Exit codes follow AIDE: bits 1/2/4 report added/removed/changed entries; 14-19 are AIDE's
error codes (16, AIDE's unimplemented function, has no use here). Codes 20 and up are
aidepy's own and documented in the README.

Every AidepyError is defined here (tests/test_names.py checks). Exceptions that never reach the
admin stay with the module that raises and handles them: `pcre.RegexError` (made a ConfigError
or UsageError), `explain.archive.ArchiveError` (a notice), `forkpool.WorkerError`.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes (AIDE's where AIDE has one)."""

    OK = 0
    ADDED = 1
    REMOVED = 2
    CHANGED = 4
    WRITE_ERROR = 14
    INVALID_ARGUMENT = 15
    INVALID_CONFIG = 17
    IO_ERROR = 18
    VERSION_MISMATCH = 19
    VERIFICATION_FAILED = 20
    VAULT_ERROR = 21
    BUSY = 22
    UNSAFE_LAYOUT = 23
    INTERRUPTED = 130


class AidepyError(Exception):
    """Base of every expected failure; the CLI prints it as one line and exits with `exit_code`."""

    exit_code: ExitCode = ExitCode.IO_ERROR
    alarm: str = "BASELINE NOT USABLE"
    """The daily mail's subject words when this failure stopped the check."""


class ConfigReadError(AidepyError):
    """The main config file cannot be read (AIDE's I/O error, exit 18)."""


class ConfigError(AidepyError):
    """A rules/config line that cannot be accepted; names the file and line like `aide`."""

    exit_code = ExitCode.INVALID_CONFIG

    def __init__(self, file: str, line: int, reason: str) -> None:
        super().__init__(f"{file}:{line}: {reason}")
        self.file = file
        self.line = line
        self.reason = reason


class UsageError(AidepyError):
    """A bad command-line argument."""

    exit_code = ExitCode.INVALID_ARGUMENT


class DatabaseWriteError(AidepyError):
    """A database or vault file could not be written; the previous one is intact."""

    exit_code = ExitCode.WRITE_ERROR
    alarm = "CANNOT WRITE THE NEW DATABASE"


class VaultFullError(DatabaseWriteError):
    """A file does not fit on the vault; the previous version is intact."""

    def __init__(self, name: str, needed: int, free: int) -> None:
        self.needed, self.free, self.missing = needed, free, needed - free
        super().__init__(
            f"{name} does not fit on the vault: it needs {needed} bytes, {free} are free, "
            f"{self.missing} bytes missing; the previous {name} is intact"
        )


class DatabaseReadError(AidepyError):
    """A database could not be read (missing, unreadable)."""

    exit_code = ExitCode.IO_ERROR


class VerificationError(AidepyError):
    """A database (or anchor) whose signature, digest or structure does not verify."""

    exit_code = ExitCode.VERIFICATION_FAILED
    alarm = "BASELINE FAILED VERIFICATION"


class UnsupportedFormatError(VerificationError):
    """A verified database this aidepy cannot read: newer format version or unknown attributes."""

    exit_code = ExitCode.VERSION_MISMATCH


class RollbackError(VerificationError):
    """A baseline older than the newest generation of its identity this host has verified."""

    alarm = "ROLLBACK"


class ApprovalLogError(VerificationError):
    """The approval log does not verify: a bad signature, a broken chain, a truncated record,
    a record signed by another key, generations going backwards, or an anchored copy that is
    not the one the vault's anchor pins."""

    exit_code = ExitCode.VERIFICATION_FAILED
    alarm = "APPROVAL LOG BROKEN"


class ForeignKeyError(VerificationError):
    """A baseline or vault whose key is not the one `public_key` pins."""

    alarm = "FOREIGN KEY"


class ForeignHostError(VerificationError):
    """A baseline recorded on another host (with host_mismatch=refuse)."""

    alarm = "FOREIGN HOST"


class AnchoredCopyError(VerificationError):
    """The disk copy a vault's anchor pins is missing or is not the one pinned."""

    alarm = "ANCHORED COPY MISSING OR CHANGED"


class KeyFileError(AidepyError):
    """A key file that is missing, unreadable, malformed, or too widely readable."""

    exit_code = ExitCode.IO_ERROR


class PassphraseError(KeyFileError):
    """The passphrase is missing or does not decrypt the private key."""

    exit_code = ExitCode.INVALID_ARGUMENT


class VaultError(AidepyError):
    """The vault medium is missing, unusable, or write-protected when a write was needed."""

    exit_code = ExitCode.VAULT_ERROR


class BusyError(AidepyError):
    """Another aidepy run holds the lock."""

    exit_code = ExitCode.BUSY
    alarm = "ANOTHER RUN HOLDS THE LOCK"


class StateIOError(AidepyError):
    """A file or directory of the state directory could not be read or written."""

    alarm = "I/O ERROR"


class UnsafeLayoutError(AidepyError):
    """A path root would act on lies in a directory another user controls (or is a link, a FIFO,
    a file owned by someone else): refused rather than followed."""

    exit_code = ExitCode.UNSAFE_LAYOUT
    alarm = "UNSAFE LAYOUT"
