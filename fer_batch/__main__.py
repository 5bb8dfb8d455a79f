"""``python -m fer_batch``: the same command line as ``fer-batch``."""

from fer_batch.cli import main

if __name__ == "__main__":
    main()
