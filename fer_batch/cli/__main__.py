"""``python -m fer_batch.cli``: the same command line as ``fer-batch``."""

from fer_batch.cli import main

main()
