"""Random graphs for the sparse RNN's recurrent connectivity, generated from a seed with the
standard library's `random` (the same graph on every platform; no networkx needed at run time).

Each returns the sorted list of undirected edges (i, j), i < j, over nodes 0..n-1.
"""
import random

GRAPHS = ("watts_strogatz", "barabasi_albert", "erdos_renyi")


def erdos_renyi(n: int, p: float, seed: int) -> list:
    """G(n, p): every pair of nodes joined independently with probability p."""
    rng = random.Random(seed)
    return [(i, j) for i in range(n) for j in range(i + 1, n) if rng.random() < p]


def watts_strogatz(n: int, k: int, p: float, seed: int) -> list:
    """Watts & Strogatz (1998): a ring where each node joins its k nearest neighbours (k/2 a side),
    then each edge (u, u + j) is rewired with probability p to (u, w), w uniform among the nodes
    u is not yet joined to (the edge count stays n·k/2)."""
    rng = random.Random(seed)
    edges = {(u, (u + j) % n) for j in range(1, k // 2 + 1) for u in range(n)}
    adjacency = {u: set() for u in range(n)}
    for u, v in edges:
        adjacency[u].add(v)
        adjacency[v].add(u)
    for j in range(1, k // 2 + 1):  # rewire in the order networkx does: by distance, then by node
        for u in range(n):
            v = (u + j) % n
            if rng.random() < p and v in adjacency[u]:
                choices = [w for w in range(n) if w != u and w not in adjacency[u]]
                if not choices:
                    continue
                w = rng.choice(choices)
                adjacency[u].discard(v)
                adjacency[v].discard(u)
                adjacency[u].add(w)
                adjacency[w].add(u)
    return sorted({(min(u, v), max(u, v)) for u in adjacency for v in adjacency[u]})


def barabasi_albert(n: int, m: int, seed: int) -> list:
    """Barabási & Albert (1999): from a star of m + 1 nodes, each new node joins m distinct
    existing nodes picked with probability proportional to their degree."""
    rng = random.Random(seed)
    edges = [(0, j) for j in range(1, m + 1)]
    ends = [v for e in edges for v in e]  # each node once per edge end: degree-proportional picks
    for new in range(m + 1, n):
        targets = set()
        while len(targets) < m:
            targets.add(rng.choice(ends))
        for t in targets:
            edges.append((t, new))
            ends += [t, new]
    return sorted((min(u, v), max(u, v)) for u, v in edges)


def generate(kind: str, n: int, seed: int, k: int = 4, p: float = 0.1, m: int = 2) -> list:
    if kind == "watts_strogatz":
        return watts_strogatz(n, k, p, seed)
    if kind == "barabasi_albert":
        return barabasi_albert(n, m, seed)
    if kind == "erdos_renyi":
        return erdos_renyi(n, p, seed)
    raise ValueError(f"graph must be one of {', '.join(GRAPHS)}; got {kind!r}")
