"""Helpers the tests share: hand-placed stores, app settings."""
