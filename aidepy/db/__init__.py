"""The signed baseline database: the file (file), its wire format (format) and its entry blocks
(blocks)."""
