"""Evals: suites in YAML (``suite``), assertions, a cached runner, comparisons and their HTML report,
and live scoring of sampled production calls (``live``).

Import from the modules (``keel.evals.runner``, ``keel.evals.compare``, …): this package stays
light so ``keel.settings`` can use ``keel.evals.settings`` without pulling in the pipeline.
"""
