"""``python -m idiomlens ...`` (also ``torchrun -m idiomlens ...``)."""

from idiomlens.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
