"""aidepy: a file-integrity monitor that keeps its signed baseline on write-protected media."""

__version__ = "0.1.0"
