"""The smart-mirror kiosk application."""

__version__ = "0.1.0"
