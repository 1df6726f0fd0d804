"""The one exception type for user mistakes in the analysis tools."""


class UserError(ValueError):
    """A mistake in what the user asked for (unknown model, bad layer name, ...).

    The CLIs print its message and exit non-zero; the Python API lets it propagate.
    """
