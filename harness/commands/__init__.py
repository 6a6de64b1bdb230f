"""Sub-commands of the ``scaling`` CLI, one module each (see :mod:`harness.cli`)."""
