"""What every method uses: the base strategy, losses, generic plugins, checkpoints, distributed
runs and the resumable loop. A method's own strategies live in its folder (``lora/``, ``share/``)."""

from avalanche_litelora.former_names import getattr_for as _getattr_for

__getattr__ = _getattr_for(__name__)  # the strategies this package exported in 0.1.0, deprecated
