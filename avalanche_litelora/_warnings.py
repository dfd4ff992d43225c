"""Third-party warnings that say nothing to the user, filtered where they arise; the
package's own, once per run (:class:`OncePerRun`).

``import avalanche`` imports qpsolvers (for GEM's quadratic program), which warns, at its
import, that no QP solver is installed: true, and irrelevant to everyone who does not run
GEM, yet it came with every entry point of this package (even ``--help``). The package's
first ``import avalanche`` goes through :func:`import_avalanche_quietly`, which ignores
that one message from that one module while the import runs, and nothing else. GEM itself
still fails with qpsolvers' own error if it needs a solver that is not there.
"""

from __future__ import annotations

import warnings

#: qpsolvers' warning at import when no solver package is installed.
NO_QP_SOLVER = r"no QP solver found"


def import_avalanche_quietly() -> None:
    """``import avalanche`` with qpsolvers' no-solver warning ignored (only that, only here)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=NO_QP_SOLVER, category=UserWarning, module=r"qpsolvers")
        import avalanche  # noqa: F401


class OncePerRun:
    """Shows each kind of an object's warning once: once per strategy, so once per run.

    Python's default filter shows a warning once per code location *and text*, so a warning
    whose text carries the experience's numbers (a step count, a loss) came back after every
    experience. The first one says what is wrong; the object (a plugin) owns one of these.
    """

    def __init__(self):
        self._shown = set()

    def warn(self, kind: str, message: str, category: type, stacklevel: int = 1) -> bool:
        """``warnings.warn`` unless ``kind`` was shown already; ``stacklevel`` as for the caller."""
        if kind in self._shown:
            return False
        self._shown.add(kind)
        warnings.warn(message, category, stacklevel=stacklevel + 1)
        return True


__all__ = ["NO_QP_SOLVER", "OncePerRun", "import_avalanche_quietly"]
