"""Training with accelerate: the loop (`zoo.training.loop`) and the `train.py` entry point."""
from .loop import TrainResult, main, train

__all__ = ["TrainResult", "main", "train"]
