"""Command-line tools (python -m scripts.<name>); data/, bench/ and demo/ group the rest by role."""
