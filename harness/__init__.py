"""scaling-harness: reproducible replications of neural scaling-law papers."""

__version__ = "0.1.0"
