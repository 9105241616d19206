"""``python -m course_lib ...`` (and ``torchrun -m course_lib ...``): see :mod:`course_lib.cli`."""
from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
