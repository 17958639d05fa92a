"""Demonstrations that replay traffic through the HTTP API."""
