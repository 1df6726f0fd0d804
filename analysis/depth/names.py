"""The depth tool's torch-free names: the CLI's parser and the report both need them."""

ANALYSES = ("contributions", "skip", "lens", "map")

__all__ = ["ANALYSES"]
