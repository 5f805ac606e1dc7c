"""aidepy: a file-integrity monitor that keeps its signed baseline on write-protected media.

The module map, from the command line down. Imports point down only (cli/ over jobs/ over the
subsystems config/ to explain/, which may use each other, over the core modules), with no
circle; tests/test_architecture.py holds the package to that.

- cli/      one module per command, over jobs/ (argument parsing and exit codes only)
- jobs/     the use cases, each in one place: the trusted baseline (check, update, compare),
            the daily report, promote and its console review, report delivery
- config/   the rules: aide.conf's language (syntax), evaluated (evaluate) into the model,
            aidepy's own settings (options)
- db/       the signed baseline database: the file, its format and its entry blocks
- scan/     the scanner: the walk, attribute collection, hashing workers, the status line
- report/   what changed, as data (model), its renderers (FORMATS) and the daily mail
- vault/    the removable medium, the vault's file names (layout), the baseline on it, the
            anchor, the program on the vault and the approval log
- explain/  changes explained by signed Debian packages
- core modules: errors, attributes, entry, compare, selection, pcre, keys, atomic, state,
  lock, rollback, content
"""

__version__ = "0.1.0"
