"""``python -m napari_dfcseg.cli`` runs the ``dfcseg`` command line."""

import sys

from . import main

sys.exit(main())
