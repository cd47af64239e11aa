"""The ``keel`` command line: one module per command group, each calling the library."""
