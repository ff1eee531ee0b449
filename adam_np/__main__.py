"""``python -m adam_np`` is the ``adam-np`` command."""

from .cli import main

raise SystemExit(main())
