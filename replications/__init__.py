"""One sub-package per replicated paper; each defines ``REPLICATION`` (see :mod:`harness.replication`)."""
