"""``python -m actors.cli`` runs imctl."""
import sys

from . import main

sys.exit(main())
