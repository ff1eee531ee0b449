"""``python -m adam_np`` is the ``adam-np`` command."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
