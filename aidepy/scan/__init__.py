"""The scanner: the walk of the tree (walk), attribute collection (collect), the fork pool of hashing
workers (forkpool) and the status line (progress)."""
