"""``python -m actors`` is ``ca-actors``."""

from actors.cli import main

main()
