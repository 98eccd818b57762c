"""``python -m napari_dfcseg`` runs the ``dfcseg`` command line."""

import sys

from .cli import main

sys.exit(main())
