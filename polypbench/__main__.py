"""``python -m polypbench`` (and ``torchrun -m polypbench train ...``) runs the command line."""

from polypbench.cli import main

if __name__ == "__main__":
    main()
