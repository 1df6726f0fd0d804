"""python -m zoo.models._shared: rewrite the architecture folders' copies of the shared modules."""
from . import sync

for path in sync():
    print(f"updated {path}")
