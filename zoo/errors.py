"""The one exception type for user mistakes, shared by `zoo` and `analysis`."""


class UserError(ValueError):
    """A mistake in what the user asked for (unknown name, invalid value, missing data, ...).

    The CLIs print its message and exit non-zero, without a traceback; the Python API lets it
    propagate. It subclasses ValueError so callers that catch ValueError keep working.
    """
