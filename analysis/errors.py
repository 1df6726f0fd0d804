"""Errors the analysis tools raise for user mistakes.

``UserError`` is the project's one exception for a mistake in what the user asked for (see
zoo.errors); ``AnalysisError`` is the analysis tools' name for it (a subclass, so code catching
UserError or ValueError keeps working). The CLIs print either as one line and exit 2
(analysis.runner.run_cli).
"""
from zoo.errors import UserError


class AnalysisError(UserError):
    """A user mistake found by an analysis tool (bad option, model that does not fit, ...)."""


__all__ = ["AnalysisError", "UserError"]
