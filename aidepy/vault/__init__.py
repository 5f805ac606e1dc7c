"""The vault: the medium (medium), the vault's file names (layout), the baseline on it (vault), the
anchor (anchor), the program on the vault (runtime, program, bootstrap) and the approval log
(approvals)."""
