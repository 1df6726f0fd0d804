"""N2N learning (Ashok et al. 2017): compress a teacher by reinforcement learning (`n2n`).

The run's model is the teacher: it is trained first by the recipe's loop (epochs, optimiser, ...).
Then two policies search for a student, episode by episode:

1. a bidirectional-LSTM *removal* policy reads one descriptor per hidden layer (relative width,
   relative position) and keeps or removes each layer (Bernoulli);
2. a bidirectional-LSTM *shrink* policy reads the kept layers and picks each one's width factor
   from `scales` (categorical).

Each candidate student (same family, the chosen hidden sizes) is trained for `student_steps`
by knowledge distillation from the teacher (KL at temperature `temperature` + cross-entropy;
the teacher's logits on the training set are computed once, in eval mode, for all students)
and scored on the eval split; evaluated architectures are cached. Reward
R = (acc_s / acc_t) · C (2 − C), C = 1 − params_s / params_t; both policies are updated by
REINFORCE with a moving-average baseline. A random search over the same action space with the
same number of *evaluated* students is the baseline (``random_search: false`` skips it). The best
student is the run's saved model; the two policies are saved beside it
(``n2n_policies.safetensors``) and ``policies_from`` starts a search from saved ones: the
descriptors are relative widths and positions, so a policy trained on one teacher reads any
other (the paper's transfer from a small to a larger teacher). metrics.json "n2n" holds the reward curve, both searches and the wall time; its "curves" is the
search curve (one point per episode), the plot in the published model's card.

The layers are the config's width list: `hidden_sizes` (mlp, g2gnet with widths that fit) or
`channels` (convnet: removing a convolution block drops its pooling too, so the classifier's
input grows; the model builds itself from the config). Results name the chosen widths
"hidden_sizes" whichever the key ("widths_key" in metrics.json says which).
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch
from torch import nn

from ..errors import UserError
from .base import TrainOutcome, register_trainer
from .loop import SGDTrainer
from .sparse import option_int


#: the two policies of a finished search, saved in the run's output folder
POLICIES_FILE = "n2n_policies.safetensors"


def save_policies(path: Path, remove: nn.Module, shrink: nn.Module) -> None:
    """Both policies in one safetensors file (``remove.*``, ``shrink.*``), written atomically."""
    from safetensors.torch import save_file

    tensors = {f"remove.{k}": v.detach().contiguous() for k, v in remove.state_dict().items()}
    tensors.update({f"shrink.{k}": v.detach().contiguous() for k, v in shrink.state_dict().items()})
    partial = Path(path).with_suffix(".partial")
    save_file(tensors, str(partial))
    os.replace(partial, path)


def load_policies(path: str | Path, remove: nn.Module, shrink: nn.Module) -> None:
    """Load :func:`save_policies`' file into the two policies; a file from a search with another
    number of width scales (or another policy size) is a clear error."""
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    for prefix, policy in (("remove.", remove), ("shrink.", shrink)):
        state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        expected = {k: tuple(v.shape) for k, v in policy.state_dict().items()}
        found = {k: tuple(v.shape) for k, v in state.items()}
        if found != expected:
            what = ("the shrink policy picks among a different number of width scales"
                    if prefix == "shrink." and set(found) == set(expected) else "the policies do not match this search's")
            raise UserError(f"policies_from {path}: {what} (saved {found.get('head.weight')}, "
                            f"this run {expected.get('head.weight')})")
        policy.load_state_dict(state)


def n2n_reward(acc_student: float, acc_teacher: float, params_student: int, params_teacher: int) -> float:
    """(acc_s / acc_t) · C (2 − C) with C = 1 − params_s / params_t (Ashok et al. 2017, eq. 3)."""
    c = 1.0 - params_student / params_teacher
    return (acc_student / acc_teacher) * c * (2.0 - c)


class LayerPolicy(nn.Module):
    """A bidirectional LSTM over per-layer descriptors, one categorical distribution per layer."""

    def __init__(self, actions: int, hidden: int = 16, features: int = 2):
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, actions)

    def forward(self, descriptors: torch.Tensor) -> torch.distributions.Categorical:
        out, _ = self.lstm(descriptors.unsqueeze(0))
        return torch.distributions.Categorical(logits=self.head(out[0]))


def reinforce_update(optimizer, log_prob: torch.Tensor, reward: float, baseline: float) -> None:
    """One REINFORCE step: ascend (R − b) · log π(a)."""
    optimizer.zero_grad()
    (-(reward - baseline) * log_prob).backward()
    optimizer.step()


def descriptors(widths: list[int]) -> torch.Tensor:
    top = max(widths)
    n = len(widths)
    return torch.tensor([[w / top, i / max(1, n - 1)] for i, w in enumerate(widths)], dtype=torch.float32)


def widths_key(config) -> str | None:
    """The config's list of layer widths n2n removes and shrinks: hidden_sizes, else channels."""
    for key in ("hidden_sizes", "channels"):
        value = getattr(config, key, None)
        if isinstance(value, (list, tuple)) and value:
            return key
    return None


def parameter_count(model) -> int:
    return sum(p.numel() for p in model.parameters())


@register_trainer("n2n")
class N2NTrainer(SGDTrainer):
    """Train the teacher with the recipe's loop, then search a student by REINFORCE (see the module)."""

    options = {"episodes": 20, "student_steps": 100, "student_lr": 1e-3, "temperature": 4.0, "kd_weight": 0.9,
               "scales": [0.25, 0.5, 0.75, 1.0], "policy_lr": 0.05, "baseline_decay": 0.8, "seed": 0,
               "policies_from": None, "random_search": True}

    def setup(self, run) -> None:
        o = run.options
        self.key = widths_key(run.unwrapped_model.config)
        if self.key is None:
            raise UserError(f"n2n compresses models whose config has a hidden_sizes or channels list; "
                            f"{run.recipe.architecture} has neither")
        option_int(o, "episodes")
        option_int(o, "student_steps")
        if not o["scales"] or any(not 0 < s <= 1 for s in o["scales"]):
            raise UserError(f"training.trainer_options.scales must be factors in (0, 1], got {o['scales']!r}")
        if o["policies_from"] is not None and not Path(o["policies_from"]).is_file():
            raise UserError(f"training.trainer_options.policies_from: no such file {o['policies_from']!r} "
                            f"(a {POLICIES_FILE} that an earlier n2n run saved)")
        super().setup(run)

    # -- students
    def build_student(self, run, hidden_sizes: list[int]):
        from ..registry import build_model

        kwargs = {**run.recipe.config, self.key: hidden_sizes}
        kwargs.setdefault("num_labels", run.unwrapped_model.config.num_labels)
        return build_model(run.recipe.architecture, **kwargs).to(run.accelerator.device)

    @staticmethod
    @torch.no_grad()
    def teacher_logits(run, teacher, chunk: int = 1024) -> torch.Tensor:
        """The teacher's logits on every training example, computed once for all students (eval mode,
        so the same targets a per-batch teacher pass would give)."""
        data, rows = run.train_set, []
        for start in range(0, len(data), chunk):
            batch = data.__getitems__(list(range(start, min(len(data), start + chunk))))
            inputs = {k: v.to(run.accelerator.device) for k, v in batch.items() if k not in ("example_index", "labels")}
            rows.append(teacher(**inputs).logits.float())
        return torch.cat(rows)

    def distil(self, run, student, teacher_logits: torch.Tensor, generator: torch.Generator) -> float:
        """Train `student` by KD from the teacher's logits for student_steps; its eval accuracy."""
        from .run import evaluate

        o = run.options
        optimizer = torch.optim.Adam(student.parameters(), lr=o["student_lr"])
        data = run.train_set
        t = o["temperature"]
        student.train()
        for _ in range(o["student_steps"]):
            index = torch.randint(len(data), (run.batch_size,), generator=generator)
            batch = data.__getitems__(index.tolist())
            batch.pop("example_index")
            batch = {k: v.to(run.accelerator.device) for k, v in batch.items()}
            soft = torch.softmax(teacher_logits[index] / t, -1)
            out = student(**batch)
            kd = nn.functional.kl_div(torch.log_softmax(out.logits / t, -1), soft, reduction="batchmean") * t * t
            loss = o["kd_weight"] * kd + (1 - o["kd_weight"]) * out.loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return evaluate(student, run.eval_dl)["eval_accuracy"]

    def score(self, run, hidden_sizes, teacher_logits, cache, generator) -> dict:
        key = tuple(hidden_sizes)
        if key not in cache:
            student = self.build_student(run, list(hidden_sizes))
            acc = self.distil(run, student, teacher_logits, generator)
            params = parameter_count(student)
            cache[key] = {"hidden_sizes": list(hidden_sizes), "accuracy": acc, "params": params,
                          "reward": n2n_reward(acc, self.teacher_acc, params, self.teacher_params), "model": student}
        return cache[key]

    def widths_of(self, widths, keep, scale_index) -> list[int]:
        scales = self.opts["scales"]
        kept = [w for w, k in zip(widths, keep) if k]
        return [max(1, int(round(w * scales[s]))) for w, s in zip(kept, scale_index)]

    # -- the search
    def train(self, run) -> TrainOutcome:
        from tqdm.auto import tqdm

        from .run import evaluate

        outcome = super().train(run)  # the teacher
        if not outcome.finished:
            return outcome
        self.opts = o = run.options
        teacher = run.unwrapped_model.eval()
        self.teacher_acc = evaluate(teacher, run.eval_dl)["eval_accuracy"]
        self.teacher_params = parameter_count(teacher)
        teacher_logits = self.teacher_logits(run, teacher)
        widths = list(getattr(teacher.config, self.key))
        torch.manual_seed(o["seed"])
        remove, shrink = LayerPolicy(2), LayerPolicy(len(o["scales"]))
        if o["policies_from"] is not None:
            load_policies(o["policies_from"], remove, shrink)
        optimizer = torch.optim.Adam([*remove.parameters(), *shrink.parameters()], lr=o["policy_lr"])
        generator = torch.Generator().manual_seed(o["seed"])
        cache: dict = {}
        baseline, curve, best = None, [], None
        started, started_cpu = time.perf_counter(), time.process_time()
        bar = tqdm(range(o["episodes"]), desc="n2n search", disable=not run.accelerator.is_local_main_process)
        for episode in bar:
            d_remove = remove(descriptors(widths))
            keep = d_remove.sample()
            if keep.sum() == 0:  # at least one hidden layer stays
                keep[torch.argmax(d_remove.probs[:, 1])] = 1
            kept = [w for w, k in zip(widths, keep.tolist()) if k]
            d_shrink = shrink(descriptors(kept))
            scale_index = d_shrink.sample()
            result = self.score(run, self.widths_of(widths, keep.tolist(), scale_index.tolist()), teacher_logits, cache, generator)
            reward = result["reward"]
            baseline = reward if baseline is None else o["baseline_decay"] * baseline + (1 - o["baseline_decay"]) * reward
            log_prob = d_remove.log_prob(keep).sum() + d_shrink.log_prob(scale_index).sum()
            reinforce_update(optimizer, log_prob, reward, baseline)
            if best is None or reward > best["reward"]:
                best = result
            curve.append({"episode": episode, "reward": reward, "best_reward": best["reward"],
                          "hidden_sizes": result["hidden_sizes"], "accuracy": result["accuracy"],
                          "keep_probs": d_remove.probs[:, 1].tolist()})  # the policy before this update
            bar.set_postfix(best_reward=round(best["reward"], 4))
        search_s, search_cpu_s = time.perf_counter() - started, time.process_time() - started_cpu
        started = time.perf_counter()
        # the random-search baseline: as many evaluated students, drawn uniformly from the same actions
        rng = torch.Generator().manual_seed(o["seed"] + 1)
        random_cache: dict = {}
        random_best, random_rewards = None, []
        for _ in range(3 * len(cache) if o["random_search"] else 0):
            if len(random_cache) >= len(cache):
                break
            keep = torch.randint(2, (len(widths),), generator=rng).tolist()
            keep[torch.randint(len(widths), (1,), generator=rng).item()] = 1
            scale_index = torch.randint(len(o["scales"]), (sum(keep),), generator=rng).tolist()
            before = len(random_cache)
            result = self.score(run, self.widths_of(widths, keep, scale_index), teacher_logits, random_cache, generator)
            if len(random_cache) > before:  # a newly evaluated student
                random_rewards.append(result["reward"])
            random_best = result if random_best is None or result["reward"] > random_best["reward"] else random_best
        random_s = time.perf_counter() - started
        if run.accelerator.is_main_process:
            save_policies(Path(run.output_dir) / POLICIES_FILE, remove, shrink)
        student = best.pop("model")
        strip = lambda r: {k: v for k, v in r.items() if k != "model"}  # noqa: E731
        outcome.model = student
        # the run's history is the teacher's: the final metrics (and the card) are the student's
        outcome.final.update(evaluate(student, run.eval_dl))
        outcome.final["eval_compression"] = self.teacher_params / best["params"]
        outcome.metrics["n2n"] = {
            "widths_key": self.key, "teacher": {"hidden_sizes": widths, "accuracy": self.teacher_acc, "params": self.teacher_params},
            "best": strip(best), "compression": self.teacher_params / best["params"],
            "episodes": o["episodes"], "evaluated_students": len(cache), "search_wall_s": search_s,
            "search_cpu_s": search_cpu_s, "random_search_wall_s": random_s,
            "curve": curve, "random_search": {"evaluated_students": len(random_cache), "rewards": random_rewards,
                                              "best": strip(random_best) if random_best else None},
            "rl_beats_random": (None if not o["random_search"] else
                                bool(random_best is None or best["reward"] > random_best["reward"])),
            "policies": POLICIES_FILE, "policies_from": o["policies_from"],
        }
        # the saved model is the student: zoo publish checks config.json against the recipe but these keys
        outcome.metrics["saved_config_changes"] = {self.key: best["hidden_sizes"]}
        # the card's curve panel: the search, one point per episode (the teacher's epochs stay in "history")
        outcome.metrics["curves"] = [{"episode": c["episode"], "reward": c["reward"], "best_reward": c["best_reward"],
                                      "student_accuracy": c["accuracy"]} for c in curve]
        return outcome
