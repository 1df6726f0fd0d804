#!/usr/bin/env python
"""Train a zoo recipe: `accelerate launch train.py hub_configs/mlp-fashion-mnist.yaml [key=value ...]`.

Also runs as `python train.py ...` (one process) and `torchrun --nproc_per_node 2 train.py ...`.
"""
import sys

from zoo.training import main

if __name__ == "__main__":
    sys.exit(main())
