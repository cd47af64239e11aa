"""Evals: suites in YAML, assertions, a cached runner, run comparison and its HTML report."""

from keel.evals.compare import Comparison, compare
from keel.evals.runner import Runner, Target, targets
from keel.evals.store import EvalStore, Run
from keel.evals.suite import Suite, load_suite

__all__ = ["Comparison", "EvalStore", "Run", "Runner", "Suite", "Target", "compare", "load_suite", "targets"]
