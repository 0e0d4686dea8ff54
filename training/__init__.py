"""Training code of SemanticHuman-HD: discriminators, losses, augmentation and the training loop.

This folder is not part of the installed inference package: it is run from a checkout
(``accelerate launch training/train.py ...``) and imported as ``training.<module>`` with the
repository root on ``sys.path``. It may import :mod:`semantichuman_hd`; the inference package never
imports it.
"""
