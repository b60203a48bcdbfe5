"""The benchmarks: each module is run from the repository root as `python -m benchmarks.NAME` (`--help` for its
flags); `benchmarks.harness` holds what they share. Their committed results are in benchmarks/results/."""
