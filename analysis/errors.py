"""User mistakes in the analysis tools raise the project's one UserError (see zoo.errors)."""
from zoo.errors import UserError

__all__ = ["UserError"]
