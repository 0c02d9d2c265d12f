"""omipacs: a research imaging archive for breast screening."""

__version__ = "0.1.0"
