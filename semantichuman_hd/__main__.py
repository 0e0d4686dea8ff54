"""``python -m semantichuman_hd``: the ``semantichuman-hd`` command line.

Guarded, so that importing this module (as a folder's ``model_index.json`` once could make a loader
do) runs nothing."""

import sys

if __name__ == "__main__":
    from .cli import main

    sys.exit(main())
