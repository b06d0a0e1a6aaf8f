"""camtrap-fast: fast two-phase training of camera-trap species classifiers."""

__version__ = "0.1.0"
