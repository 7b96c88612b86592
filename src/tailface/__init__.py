"""tailface: deep face representations from long-tail data."""

__version__ = "0.1.0"
