"""zooscope analysis tools: load any model by name and measure it.

Each tool is one module of pure functions and result dataclasses (``analysis.depth``,
``analysis.drop``, ``analysis.convergent``, ...) with a ``zoo-analysis`` sub-command.
"""
