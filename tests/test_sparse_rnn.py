"""sparse_rnn: the random graphs (closed forms, counts), the graph as the recurrent connectivity,
and the stored graph reloading to the same connectivity."""
import itertools

import pytest
import torch

import zoo
from zoo.models.sparse_rnn.graphs import barabasi_albert, erdos_renyi, generate, watts_strogatz


def degrees(n, edges):
    d = [0] * n
    for i, j in edges:
        d[i] += 1
        d[j] += 1
    return d


def clustering(n, edges):
    """The mean local clustering coefficient, computed from the adjacency sets."""
    adj = {u: set() for u in range(n)}
    for i, j in edges:
        adj[i].add(j)
        adj[j].add(i)
    values = []
    for u in range(n):
        k = len(adj[u])
        links = sum(1 for a, b in itertools.combinations(adj[u], 2) if b in adj[a])
        values.append(2 * links / (k * (k - 1)) if k > 1 else 0.0)
    return sum(values) / n


def test_watts_strogatz():
    n, k = 30, 6
    lattice = watts_strogatz(n, k, 0.0, seed=0)
    assert len(lattice) == n * k // 2 and set(degrees(n, lattice)) == {k}
    assert clustering(n, lattice) == pytest.approx(3 * (k - 2) / (4 * (k - 1)))  # the ring lattice's closed form
    rewired = watts_strogatz(n, k, 0.5, seed=0)
    assert len(rewired) == n * k // 2 and rewired != lattice  # rewiring keeps the edge count
    assert all(i < j for i, j in rewired) and len(set(rewired)) == len(rewired)
    assert clustering(n, rewired) < clustering(n, lattice)
    assert watts_strogatz(n, k, 0.5, seed=0) == rewired and watts_strogatz(n, k, 0.5, seed=1) != rewired


def test_barabasi_albert():
    n, m = 40, 3
    edges = barabasi_albert(n, m, seed=0)
    assert len(edges) == m + (n - m - 1) * m and len(set(edges)) == len(edges)
    d = degrees(n, edges)
    assert min(d) >= 1 and min(d[m + 1:]) >= m and max(d) > 3 * m  # hubs: preferential attachment


def test_erdos_renyi():
    n, p = 60, 0.2
    counts = [len(erdos_renyi(n, p, seed=s)) for s in range(5)]
    expected = p * n * (n - 1) / 2
    sd = (n * (n - 1) / 2 * p * (1 - p)) ** 0.5
    assert all(abs(c - expected) < 4 * sd for c in counts) and len(set(counts)) > 1
    assert erdos_renyi(n, 0.0, 0) == [] and len(erdos_renyi(n, 1.0, 0)) == n * (n - 1) // 2
    with pytest.raises(ValueError, match="graph must be one of"):
        generate("small_world", 5, 0)


def sparse(**overrides):
    torch.manual_seed(0)
    config = {**dict(input_size=2, hidden_size=8, cell="tanh", graph="erdos_renyi", graph_p=0.3, num_labels=2), **overrides}
    return zoo.create_model("sparse_rnn", **config).eval()


def test_the_graph_is_the_recurrent_connectivity():
    model = sparse()
    mask = model.rnn.recurrent_mask
    assert torch.equal(mask, mask.T) and torch.equal(mask.diagonal(), torch.ones(8))
    edges = erdos_renyi(8, 0.3, seed=0)
    assert model.rnn.edges() == edges
    x = torch.randn(2, 6, 2)
    with torch.no_grad():
        before = model(input_features=x).logits
        missing = next((i, j) for i in range(8) for j in range(8) if not mask[i, j])
        model.rnn.layer.weight_hh[missing] += 5.0  # a non-edge: no effect
        assert torch.equal(model(input_features=x).logits, before)
        model.rnn.layer.weight_hh[edges[0]] += 5.0  # an edge: an effect
        assert not torch.allclose(model(input_features=x).logits, before)


@pytest.mark.parametrize("graph", ["watts_strogatz", "barabasi_albert", "erdos_renyi"])
def test_stored_graph_reloads_to_the_same_connectivity(graph, tmp_path):
    model = sparse(graph=graph, graph_k=2, graph_m=2, cell="lstm")
    stored = model.rnn.recurrent_mask.clone()
    model.save_pretrained(tmp_path / "a")
    loaded = type(model).from_pretrained(tmp_path / "a")
    assert torch.equal(loaded.rnn.recurrent_mask, stored)
    # the checkpoint's graph wins over the config's: edit the buffer, save, reload
    with torch.no_grad():
        model.rnn.recurrent_mask.copy_(torch.eye(8))
    model.save_pretrained(tmp_path / "b")
    edited = type(model).from_pretrained(tmp_path / "b")
    assert torch.equal(edited.rnn.recurrent_mask, torch.eye(8)) and edited.rnn.edges() == []
    x = torch.randn(2, 5, 2)
    with torch.no_grad():
        torch.testing.assert_close(edited.eval()(input_features=x).logits, model(input_features=x).logits, rtol=0, atol=0)


@pytest.mark.parametrize("field, value", [("graph", "ring"), ("graph_k", 3), ("graph_p", 1.5), ("graph_m", 8)])
def test_invalid_graph_settings_name_the_field(field, value):
    with pytest.raises(zoo.errors.UserError, match=field):
        zoo.registry.build_config("sparse_rnn", hidden_size=8, **{field: value})
