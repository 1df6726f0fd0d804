"""zoo.training.n2n: the reward's closed form, REINFORCE on a 2-action bandit moves toward the
better action, a tiny search saves its best student, and models without hidden_sizes are refused."""
from __future__ import annotations

import json

import pytest
import torch
import yaml

import zoo
from zoo.training import train
from zoo.training.n2n import LayerPolicy, n2n_reward, reinforce_update


def test_reward_closed_form():
    assert n2n_reward(0.9, 0.9, 50, 100) == pytest.approx(0.75)  # C = 1/2: C(2 − C) = 3/4
    assert n2n_reward(0.45, 0.9, 10, 100) == pytest.approx(0.5 * 0.9 * 1.1)
    assert n2n_reward(0.9, 0.9, 100, 100) == 0.0  # no compression, no reward


def test_reinforce_on_a_two_action_bandit_moves_toward_the_better_action():
    torch.manual_seed(0)
    policy = LayerPolicy(2)
    optimizer = torch.optim.Adam(policy.parameters(), lr=0.05)
    state = torch.tensor([[1.0, 0.0]])  # one "layer": one decision per episode
    p_before = policy(state).probs[0, 1].item()
    # one step from the same state: the gradient of (R - b) log pi(a) pushes toward the rewarded action
    dist = policy(state)
    reinforce_update(optimizer, dist.log_prob(torch.tensor([0])).sum(), reward=0.0, baseline=0.5)
    assert policy(state).probs[0, 1].item() > p_before
    baseline = None
    for _ in range(60):
        dist = policy(state)
        action = dist.sample()
        reward = 1.0 if action.item() == 1 else 0.2
        baseline = reward if baseline is None else 0.8 * baseline + 0.2 * reward
        reinforce_update(optimizer, dist.log_prob(action).sum(), reward, baseline)
    assert policy(state).probs[0, 1].item() > 0.9


def recipe(tmp_path, architecture="mlp", config=None):
    path = tmp_path / "n2n.yaml"
    path.write_text(yaml.safe_dump({
        "id": "tiny-n2n", "architecture": architecture,
        "config": config or {"image_size": 8, "hidden_sizes": [32, 32, 16], "num_labels": 10},
        "data": {"name": "digits"},
        "training": {"epochs": 2, "batch_size": 64, "lr": 0.01, "optimizer": "adam", "seed": 0, "checkpoint_every": 0,
                     "trainer": "n2n", "trainer_options": {"episodes": 4, "student_steps": 15}}}))
    return path


def test_tiny_search_saves_its_best_student(tmp_path):
    result = train(recipe(tmp_path), output_dir=tmp_path / "out")
    n2n = result.metrics["n2n"]
    assert len(n2n["curve"]) == 4 and 1 <= n2n["evaluated_students"] <= 4
    assert n2n["random_search"]["evaluated_students"] == n2n["evaluated_students"]
    assert len(n2n["random_search"]["rewards"]) == n2n["evaluated_students"]  # one per new student, in order
    assert max(n2n["random_search"]["rewards"]) == n2n["random_search"]["best"]["reward"]
    best = n2n["best"]
    assert best["reward"] == max(c["reward"] for c in n2n["curve"])
    assert best["reward"] == pytest.approx(n2n_reward(best["accuracy"], n2n["teacher"]["accuracy"], best["params"],
                                                      n2n["teacher"]["params"]))
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert saved["hidden_sizes"] == best["hidden_sizes"]  # the published model is the best student
    assert n2n["compression"] == pytest.approx(n2n["teacher"]["params"] / best["params"])
    assert result.metrics["final"]["eval_accuracy"] == pytest.approx(best["accuracy"])
    # the search curve is metrics.json's "curves"; the student publishes (its config is not the
    # recipe's teacher config) with that curve plotted in its card
    from zoo.hub import export_repo
    from zoo.recipes import load_recipe

    curves = result.metrics["curves"]
    assert [c["episode"] for c in curves] == [0, 1, 2, 3]
    assert [c["reward"] for c in curves] == [c["reward"] for c in n2n["curve"]]
    assert curves[-1]["best_reward"] == best["reward"]
    repo = export_repo(load_recipe(recipe(tmp_path)), repo_dir=tmp_path / "repo", output_dir=tmp_path / "out")
    assert json.loads((repo / "config.json").read_text())["hidden_sizes"] == best["hidden_sizes"]
    assert "![training curves](training_curves.png)" in (repo / "README.md").read_text()
    assert (repo / "training_curves.png").stat().st_size > 0


def test_policies_are_saved_and_a_later_search_starts_from_them(tmp_path):
    """The first search's policies (safetensors beside the student) load into a second search on
    a deeper teacher: its first episode's action probabilities are those of the saved policies."""
    from zoo.training.n2n import POLICIES_FILE, LayerPolicy, descriptors, load_policies

    first = train(recipe(tmp_path), ["training.trainer_options.random_search=false"], output_dir=tmp_path / "small")
    saved = tmp_path / "small" / POLICIES_FILE
    assert first.metrics["n2n"]["policies"] == POLICIES_FILE and first.metrics["n2n"]["random_search"]["best"] is None
    assert first.metrics["n2n"]["rl_beats_random"] is None
    remove, shrink = LayerPolicy(2), LayerPolicy(4)
    load_policies(saved, remove, shrink)
    fresh = LayerPolicy(2)
    deeper = [48, 32, 32, 16]
    assert not torch.allclose(remove(descriptors(deeper)).probs, fresh(descriptors(deeper)).probs)
    # the trained policies differ from a fresh start (they were updated in 4 episodes)
    torch.manual_seed(0)
    assert not all(torch.equal(a, b) for a, b in zip(LayerPolicy(2).state_dict().values(), remove.state_dict().values()))
    second = train(recipe(tmp_path, config={"image_size": 8, "hidden_sizes": deeper, "num_labels": 10}),
                   ["training.trainer_options.episodes=1", f"training.trainer_options.policies_from={saved}",
                    "training.trainer_options.random_search=false"], output_dir=tmp_path / "large")
    assert second.metrics["n2n"]["policies_from"] == str(saved)
    # its first episode drew from the loaded removal policy, not a fresh one
    assert second.metrics["n2n"]["curve"][0]["keep_probs"] == pytest.approx(
        remove(descriptors(deeper)).probs[:, 1].tolist(), abs=1e-6)
    # a search with other width scales cannot take these policies
    with pytest.raises(zoo.UserError, match="different number of width scales"):
        train(recipe(tmp_path), [f"training.trainer_options.policies_from={saved}",
                                 "training.trainer_options.scales=[0.5,1.0]"], output_dir=tmp_path / "bad")
    with pytest.raises(zoo.UserError, match="no such file"):
        train(recipe(tmp_path), ["training.trainer_options.policies_from=/nonexistent.safetensors"],
              output_dir=tmp_path / "bad2")


def test_convnet_teacher_shrinks_its_channels(tmp_path):
    config = {"image_size": 8, "num_channels": 1, "channels": [6, 6, 4], "hidden_size": 8, "num_labels": 10}
    path = recipe(tmp_path, "convnet", config)
    result = train(path, ["training.epochs=1", "training.trainer_options.episodes=2",
                          "training.trainer_options.student_steps=3"], output_dir=tmp_path / "out")
    n2n = result.metrics["n2n"]
    assert n2n["widths_key"] == "channels" and n2n["teacher"]["hidden_sizes"] == [6, 6, 4]
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert saved["channels"] == n2n["best"]["hidden_sizes"] and saved["hidden_size"] == 8
    student = zoo.create_model("convnet", **{**config, "channels": n2n["best"]["hidden_sizes"]})
    assert n2n["best"]["params"] == sum(p.numel() for p in student.parameters())


def test_n2n_refuses_a_model_without_a_width_list(tmp_path):
    config = {"image_size": 8, "num_channels": 1, "filters": 3, "depth": 2, "kernel_size": 3, "num_labels": 10}
    with pytest.raises(zoo.UserError, match="hidden_sizes or channels"):
        train(recipe(tmp_path, "residual_cnn", config), output_dir=tmp_path / "out")
