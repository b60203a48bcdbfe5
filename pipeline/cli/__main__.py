"""`python -m pipeline.cli ...` = `fashion-ddpm ...` (for subprocesses and environments without the console script)."""

from . import main

main()
