"""`python -m shared.build`: see shared.build.cli."""
from shared.build.cli import main

__all__: list[str] = []

raise SystemExit(main())
