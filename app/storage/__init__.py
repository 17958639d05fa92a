"""Everything that touches Redis; every key name is in keys.py."""
