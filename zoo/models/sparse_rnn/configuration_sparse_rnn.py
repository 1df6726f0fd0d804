"""Configuration of the sparse RNN: recurrent connections only along the edges of a random graph."""
from transformers import PretrainedConfig

from .zoo_common import label_kwargs, one_of, positive_int

CELLS = ("tanh", "relu", "gru", "lstm")
GRAPHS = ("watts_strogatz", "barabasi_albert", "erdos_renyi")


class SparseRNNConfig(PretrainedConfig):
    r"""One recurrent layer whose hidden-to-hidden weights are masked by a random graph over its
    units (Darji 2024): unit i reads unit j's previous state only if i and j are joined (and
    itself when `self_loops`), in every gate. The input and output connections stay dense.

    Args:
        input_size (`int`): features per time step.
        hidden_size (`int`): recurrent units, the graph's nodes.
        cell (`str`): "tanh", "relu", "gru" or "lstm".
        graph (`str`): "watts_strogatz" (ring of `graph_k` neighbours, rewired with probability
            `graph_p`), "barabasi_albert" (preferential attachment, `graph_m` edges a new node) or
            "erdos_renyi" (each pair with probability `graph_p`).
        graph_k (`int`): Watts–Strogatz neighbours (even, < hidden_size).
        graph_p (`float`): Watts–Strogatz rewiring or Erdős–Rényi edge probability, in [0, 1].
        graph_m (`int`): Barabási–Albert edges per new node (< hidden_size).
        graph_seed (`int`): the graph's seed. The graph drawn is stored in the checkpoint (the
            buffer `rnn.recurrent_mask`), so a saved model keeps its connectivity.
        self_loops (`bool`): keep each unit's connection to itself.
        pooling (`str`): "last" (final state) or "mean" (mean output over the real steps).
        max_steps (`int`): the longest sequence accepted.
        num_labels (`int`): number of classes.
    """

    model_type = "sparse_rnn"

    def __init__(
        self,
        input_size: int = 1,
        hidden_size: int = 64,
        cell: str = "tanh",
        graph: str = "watts_strogatz",
        graph_k: int = 4,
        graph_p: float = 0.1,
        graph_m: int = 2,
        graph_seed: int = 0,
        self_loops: bool = True,
        pooling: str = "last",
        max_steps: int = 1024,
        num_labels: int | None = None,
        **kwargs,
    ):
        kwargs = label_kwargs(num_labels, kwargs, default=2)
        for field, value in (("input_size", input_size), ("hidden_size", hidden_size), ("graph_k", graph_k),
                             ("graph_m", graph_m), ("max_steps", max_steps)):
            positive_int(field, value)
        if graph_k % 2 or graph_k >= hidden_size:
            raise ValueError(f"graph_k must be even and below hidden_size ({hidden_size}), got {graph_k}")
        if graph_m >= hidden_size:
            raise ValueError(f"graph_m must be below hidden_size ({hidden_size}), got {graph_m}")
        if isinstance(graph_p, bool) or not isinstance(graph_p, (int, float)) or not 0 <= graph_p <= 1:
            raise ValueError(f"graph_p must be in [0, 1], got {graph_p!r}")
        if isinstance(graph_seed, bool) or not isinstance(graph_seed, int):
            raise ValueError(f"graph_seed must be an integer, got {graph_seed!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.cell = one_of("cell", cell, CELLS)
        self.graph = one_of("graph", graph, GRAPHS)
        self.graph_k, self.graph_p, self.graph_m, self.graph_seed = graph_k, float(graph_p), graph_m, graph_seed
        self.self_loops = bool(self_loops)
        self.pooling = one_of("pooling", pooling, ("last", "mean"))
        self.max_steps = max_steps
        super().__init__(**kwargs)
