"""Trainer `convex`: a two-layer ReLU net trained to the global optimum of its convex program
(Pilanci & Ergen 2020; Bai, Gautam & Sojoudi 2022, "Efficient Global Optimization of Two-layer
ReLU Networks"). The result is an ordinary `two_layer_mlp` checkpoint.

The program (squared loss on ±1 targets, group-ℓ2 regularisation β, the objective
1/(2n)‖f(X) − y‖² + β/2 (‖W₁‖² + ‖W₂‖²) of the net) is solved over sampled, deduplicated
activation patterns (`training.trainer_options.patterns`: random | pairs | net | adaptive, or
all of them for small n·d: the exact program) by ADMM (`solver: admm`) or as the gated-ReLU
program by FISTA converted to ReLU (`solver: gated`); see zoo/training/convex_solvers.py.
Adversarial training (`epsilon` > 0, the ℓ∞ radius) and the hinge loss (`loss: hinge`) are the
robust program of zoo/training/convex_robust.py, solved by cvxpy + Clarabel (`solver: cvxpy`). Neurons come back as u = v/√‖v‖, α = ±√‖v‖; the saved net
has one hidden unit per non-zero block (config.hidden_dim becomes that count).

Classification: two classes are one program on y = ±1 (logits ∓f/2, so argmax = sign f); K > 2
classes are K one-vs-rest programs whose neurons are stacked (a block-structured W₂).
Regression (problem_type: regression, num_labels 1): the targets themselves.
With config.first_layer_bias the inputs get a constant column (the bias is then regularised).
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch

from ..errors import UserError
from .base import TrainOutcome, register_trainer
from .convex_patterns import (MAX_HYPERPLANES, all_gates, count_hyperplanes, most_violated, pair_gates, random_gates,
                               train_relu_net)
from .convex_robust import LOSSES, certify, require_cvxpy, solve_robust
from .convex_solvers import (ConvexSolution, ReluADMM, extend_warm, fista_gated, gated_by_sign, gated_to_relu,
                             net_to_convex, patterns_from_gates, recover_neurons, relu_objective, relu_predict)

PATTERN_SOURCES = ("random", "pairs", "net", "adaptive", "all")
SOLVERS = ("admm", "gated", "cvxpy")


def _number(name, value, low, integer=False, allow_none=False):
    """An option that must be a finite number > low (an integer >= low with `integer`)."""
    if value is None and allow_none:
        return None
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if integer:
        ok = ok and float(value).is_integer() and value >= low
    else:
        ok = ok and value > low
    if not ok:
        what = f"an integer >= {low}" if integer else f"a finite number > {low}"
        raise UserError(f"training.trainer_options.{name} must be {what}, got {value!r}")
    return int(value) if integer else float(value)


def check_problem(X: np.ndarray, labels: np.ndarray, regression: bool, num_labels: int) -> None:
    """The data errors a convex run refuses with one line."""
    if X.ndim != 2 or len(X) == 0:
        raise UserError(f"convex training needs a non-empty matrix of input_features, got shape {X.shape}")
    if not np.isfinite(X).all():
        bad = int((~np.isfinite(X)).any(1).sum())
        raise UserError(f"input_features hold non-finite values (NaN or inf) in {bad} training example(s)")
    if regression:
        if not np.isfinite(labels).all():
            raise UserError("regression targets (labels) hold non-finite values")
        return
    classes = np.unique(labels)
    if len(classes) < 2:
        raise UserError(f"the training labels hold one class only ({classes.tolist()}): "
                        "a classifier needs examples of at least two classes")
    if classes.min() < 0 or classes.max() >= num_labels:
        raise UserError(f"training labels {classes.min()}..{classes.max()} do not fit num_labels={num_labels}")


def targets(labels: np.ndarray, regression: bool, num_labels: int) -> list[np.ndarray]:
    """The scalar programs' targets: one (y = ±1, or the regression target) or K one-vs-rest."""
    if regression:
        return [labels.astype(float).reshape(-1)]
    if num_labels == 2:
        return [np.where(labels == 1, 1.0, -1.0)]
    return [np.where(labels == k, 1.0, -1.0) for k in range(num_labels)]


@register_trainer("convex")
class ConvexTrainer:
    """A solver-type trainer (no SGD steps): see the module docstring."""

    options = {
        "beta": 1e-3,  # β: the group-ℓ2 weight (= weight decay β/2 on both layers of the net)
        "patterns": "random",  # random | pairs | net | adaptive | all (every pattern: the exact program, small n·d)
        "num_patterns": 100,  # P: sampled gates (before deduplication); the net source uses its width
        "solver": "admm",  # admm (the ReLU program) | gated (gated ReLU by FISTA, then converted) | cvxpy (Clarabel)
        "loss": "squared",  # squared | hinge (solver cvxpy)
        "epsilon": 0.0,  # ℓ∞ radius of adversarial training: > 0 solves the robust program (solver cvxpy)
        "max_iter": 5000,
        "tol": 1e-6,  # ADMM: relative primal/dual residuals
        "gap_tol": 1e-4,  # relative duality gap
        "rho": None,  # ADMM penalty; None = 10/n, adapted by residual balancing
        "cone_scale": 3.0,  # ADMM: the cone constraints are scaled by cone_scale/√n
        "polish_iter": 500,  # solver gated: ADMM iterations after the conversion (0: conversion only)
        "net_steps": 2000,  # patterns net: full-batch Adam steps of the net whose patterns are used
        "net_lr": 1e-2,
        "grow_rounds": 4,  # patterns adaptive: rounds of adding the most violated patterns
        "grow_candidates": 1000,
        "log_every": 10,
    }

    def setup(self, run) -> None:
        """Every check before the output folder is written."""
        o = run.options
        config = run.unwrapped_model.config
        if getattr(config, "model_type", None) != "two_layer_mlp":
            raise UserError(f"trainer convex trains two_layer_mlp models, not {run.recipe.architecture}")
        if config.activation != "relu":
            raise UserError(f"trainer convex needs config.activation: relu, got {config.activation!r}")
        if config.fixed_second_layer:
            raise UserError("trainer convex trains both layers: set config.fixed_second_layer: false")
        if config.second_layer_bias:
            raise UserError("the convex program has no second-layer bias: set config.second_layer_bias: false")
        self.beta = _number("beta", o["beta"], low=0.0)
        self.P = _number("num_patterns", o["num_patterns"], low=1, integer=True)
        for name in ("max_iter", "grow_rounds", "grow_candidates", "log_every", "net_steps"):
            _number(name, o[name], low=1, integer=True)
        _number("polish_iter", o["polish_iter"], low=0, integer=True)
        for name in ("tol", "gap_tol", "net_lr", "cone_scale"):
            _number(name, o[name], low=0.0)
        _number("rho", o["rho"], low=0.0, allow_none=True)
        eps = o["epsilon"]
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
            raise UserError(f"training.trainer_options.epsilon must be a finite number >= 0, got {eps!r}")
        if o["loss"] not in LOSSES:
            raise UserError(f"training.trainer_options.loss must be one of {', '.join(LOSSES)}, got {o['loss']!r}")
        if (eps > 0 or o["loss"] != "squared") and o["solver"] != "cvxpy":
            raise UserError("robust (epsilon > 0) and hinge-loss programs are solved by training.trainer_options.solver: cvxpy")
        if o["solver"] == "cvxpy":
            require_cvxpy()
            if o["patterns"] == "adaptive":
                raise UserError("training.trainer_options.patterns: adaptive grows patterns by ADMM: use solver: admm")
        if o["loss"] == "hinge" and getattr(config, "problem_type", None) == "regression":
            raise UserError("the hinge loss is for classification: use loss: squared for regression")
        if o["patterns"] not in PATTERN_SOURCES:
            raise UserError(f"training.trainer_options.patterns must be one of {', '.join(PATTERN_SOURCES)}, got {o['patterns']!r}")
        if o["solver"] not in SOLVERS:
            raise UserError(f"training.trainer_options.solver must be one of {', '.join(SOLVERS)}, got {o['solver']!r}")
        X = run.train_set.columns[run.unwrapped_model.main_input_name].double().numpy()
        labels = run.train_set.columns["labels"].numpy()
        self.regression = getattr(config, "problem_type", None) == "regression"
        check_problem(X, labels, self.regression, config.num_labels)
        self.bias = bool(config.first_layer_bias)
        self.X = np.concatenate([X, np.ones((len(X), 1))], 1) if self.bias else X
        if o["patterns"] == "all" and count_hyperplanes(*self.X.shape) > MAX_HYPERPLANES:
            raise UserError(f"patterns: all enumerates C(n, d-1) = {count_hyperplanes(*self.X.shape)} hyperplanes for n = {len(X)}, "
                            f"d = {self.X.shape[1]} (bias column included): more than {MAX_HYPERPLANES}; use patterns: random")
        self.ys = targets(labels, self.regression, config.num_labels)
        Xe = run.eval_set.columns[run.unwrapped_model.main_input_name].double().numpy()
        self.X_eval = np.concatenate([Xe, np.ones((len(Xe), 1))], 1) if self.bias else Xe
        self.y_eval = run.eval_set.columns["labels"].numpy()

    # -- the run
    def train(self, run) -> TrainOutcome:
        self.o = run.options
        model = run.unwrapped_model
        config = model.config
        rng = np.random.default_rng(run.settings["seed"])
        blocks, reports = [], []
        for k, y in enumerate(self.ys):
            def log(it, V, W, row, k=k):  # test accuracy of the net at this iteration (the paper's early-accuracy claim)
                if len(self.ys) == 1 and not self.regression:
                    f = relu_predict(self.X_eval, *recover_neurons(V, W))
                    row["eval_accuracy"] = float(((f > 0).astype(int) == self.y_eval).mean())
            solution, info = PatternSolver(self.X, self.o, perturbed=config.input_dim).solve(rng, y, config.hidden_dim, callback=log)
            if self.o["epsilon"] > 0 and len(self.ys) == 1 and not self.regression:
                U, alpha = recover_neurons(solution.V, solution.W)
                ye = np.where(self.y_eval == 1, 1.0, -1.0)
                info["certified_train_accuracy"] = float(certify(self.X, y, U, alpha, self.o["epsilon"], config.input_dim).mean())
                info["certified_eval_accuracy"] = float(certify(self.X_eval, ye, U, alpha, self.o["epsilon"], config.input_dim).mean())
            U, alpha = recover_neurons(solution.V, solution.W)
            blocks.append((U, alpha))
            finite = bool(np.isfinite(solution.lower_bound))  # solver cvxpy: no dual bound of ours
            reports.append({**info, "objective": solution.objective, "lower_bound": solution.lower_bound if finite else None,
                            "relative_gap": solution.relative_gap if finite else None, "iterations": solution.iterations,
                            "converged": solution.converged, "seconds": solution.seconds, "neurons": len(alpha),
                            "history": solution.history[:: max(1, len(solution.history) // 200)]})
        new_model = self.build(model, blocks)
        run.total_steps = run.state["step"] = int(sum(r["iterations"] for r in reports))
        run.state["train_time_s"] = float(sum(r["seconds"] for r in reports))
        objective = float(sum(r["objective"] for r in reports))
        return TrainOutcome(model=new_model, final={"convex_objective": objective},
                            metrics={"convex": {"beta": self.beta, "solver": self.o["solver"], "loss": self.o["loss"],
                                                "epsilon": float(self.o["epsilon"]), "programs": reports}})

    def build(self, model, blocks):
        """The two_layer_mlp holding the recovered neurons (hidden_dim = their number, ≥ 1)."""
        config = copy.deepcopy(model.config)
        width = max(1, sum(len(a) for _, a in blocks))
        config.hidden_dim = width
        d_in = config.input_dim
        W1 = np.zeros((width, d_in))
        b1 = np.zeros(width)
        W2 = np.zeros((config.num_labels, width))
        start = 0
        for k, (U, alpha) in enumerate(blocks):
            rows = slice(start, start + len(alpha))
            W1[rows] = U[:, :d_in]
            if self.bias:
                b1[rows] = U[:, d_in]
            if self.regression:
                W2[0, rows] = alpha
            elif config.num_labels == 2:
                W2[0, rows], W2[1, rows] = -alpha / 2, alpha / 2
            else:
                W2[k, rows] = alpha
            start += len(alpha)
        new = type(model)(config)
        with torch.no_grad():
            new.hidden.weight.copy_(torch.as_tensor(W1, dtype=new.hidden.weight.dtype))
            if new.hidden.bias is not None:
                new.hidden.bias.copy_(torch.as_tensor(b1, dtype=new.hidden.bias.dtype))
            new.output.weight.copy_(torch.as_tensor(W2, dtype=new.output.weight.dtype))
        return new.to(model.device)


class PatternSolver:
    """One scalar program on inputs X (n × d, bias column included) with the trainer's options:
    the patterns of `options["patterns"]`, solved by `options["solver"]`."""

    def __init__(self, X: np.ndarray, options: dict, perturbed: int | None = None):
        self.X, self.options = X, {**ConvexTrainer.options, **options}
        self.perturbed = X.shape[1] if perturbed is None else perturbed  # columns an adversary moves (not the bias)
        self.beta, self.P = float(self.options["beta"]), int(self.options["num_patterns"])
        self.kappa = float(self.options["cone_scale"]) / np.sqrt(len(X))

    def gates(self, rng, y, width: int, net=None):
        o, X = self.options, self.X
        source = o["patterns"]
        if source == "pairs":
            return pair_gates(rng, X, y, self.P), None
        if source == "all":
            return all_gates(X), None
        if source == "net" and net is not None:
            return net[0], net
        if source == "net":
            U, alpha, curve = train_relu_net(X, y, width, self.beta, steps=o["net_steps"], lr=o["net_lr"],
                                             seed=int(rng.integers(2**31)))
            return U, (U, alpha, curve)
        count = self.P // 2 if source == "adaptive" else self.P
        return random_gates(rng, max(count, 1), X.shape[1]), None

    def solve(self, rng, y, width: int, callback=None, net=None) -> tuple[ConvexSolution, dict]:
        """The solution and what to report; `net` = (U, alpha) of a trained net for the net source
        (else one is trained here with Adam, `width` neurons)."""
        o, X, beta = self.options, self.X, self.beta
        gates, net = self.gates(rng, y, width, net)
        D, gates = patterns_from_gates(X, gates)
        if D.shape[1] == 0:
            raise UserError("no activation pattern is non-empty: the inputs are all zero")
        info = {"patterns": o["patterns"]}
        kw = dict(max_iter=o["max_iter"], tol=o["tol"], gap_tol=o["gap_tol"], log_every=o["log_every"], callback=callback)
        if o["solver"] == "cvxpy":
            solution = solve_robust(X, y, D, beta, float(o["epsilon"]), o["loss"], self.perturbed)
            info.update(program_value=solution.state["program_value"], loss=o["loss"], epsilon=float(o["epsilon"]),
                        num_patterns=D.shape[1])
            return solution, info
        if o["solver"] == "gated":
            gated = fista_gated(X, y, D, beta, max_iter=o["max_iter"], gap_tol=o["gap_tol"], log_every=o["log_every"])
            V, W = gated_to_relu(X, D, gates, gated.V)
            U, alpha = recover_neurons(V, W)
            info.update(gated_objective=gated.objective, gated_lower_bound=gated.lower_bound,
                        gated_iterations=gated.iterations, converted_objective=relu_objective(X, y, U, alpha, beta))
            if o["polish_iter"] == 0:
                return ConvexSolution(V=V, W=W, objective=info["converted_objective"], lower_bound=-np.inf,
                                      iterations=gated.iterations, converged=gated.converged, seconds=gated.seconds,
                                      history=gated.history), info
            kw["max_iter"] = o["polish_iter"]
            Vs, Ws = gated_by_sign(X, D, gated.V)  # a better start than the exact split (see FINDINGS)
            admm = ReluADMM(X, y, D, gates, beta, rho=o["rho"], cone_scale=self.kappa)
            solution = admm.solve(warm={"Z": np.concatenate([Vs, Ws])}, **kw)
            solution.iterations += gated.iterations
            return solution, info
        warm = None
        if net is not None:
            Dn, Vn, Wn = net_to_convex(X, net[0], net[1])
            info["net_objective"] = relu_objective(X, y, net[0], net[1], beta)
            # the gates are the net's neurons: their patterns (deduplicated) hold the net's blocks
            index = {np.packbits(col).tobytes(): j for j, col in enumerate(D.T)}
            V0, W0 = np.zeros((D.shape[1], X.shape[1])), np.zeros((D.shape[1], X.shape[1]))
            for j, col in enumerate(Dn.T):
                k = index.get(np.packbits(col).tobytes())
                if k is not None:  # an empty pattern (a dead neuron) contributes nothing
                    V0[k] += Vn[j]
                    W0[k] += Wn[j]
            warm = {"Z": np.concatenate([V0, W0])}
        solver = ReluADMM(X, y, D, gates, beta, rho=o["rho"], cone_scale=self.kappa)
        solution = solver.solve(warm=warm, **kw)
        if o["patterns"] == "adaptive":
            solution, D = self.grow(rng, y, D, gates, solution, kw)
            info["grown_to"] = D.shape[1]
        if net is not None and info["net_objective"] < solution.objective:
            # ADMM stopped before it beat its own warm start: keep the net (the refinement never loses)
            info["kept_net"] = True
            V, W = net_to_convex(X, net[0], net[1])[1:]
            solution = ConvexSolution(V=V, W=W, objective=info["net_objective"], lower_bound=solution.lower_bound,
                                      iterations=solution.iterations, converged=False, seconds=solution.seconds,
                                      history=solution.history)
        info["num_patterns"] = D.shape[1]
        return solution, info

    def grow(self, rng, y, D, gates, solution, kw):
        o, X = self.options, self.X
        per_round = max(1, (self.P - D.shape[1]) // o["grow_rounds"])
        total_iterations, history = solution.iterations, list(solution.history)
        for _ in range(o["grow_rounds"]):
            mu = (y - relu_predict(X, *recover_neurons(solution.V, solution.W))) / len(y)
            new, scores = most_violated(rng, X, mu, 4 * per_round, o["grow_candidates"])
            new = new[scores > self.beta]
            D_new, new = patterns_from_gates(X, new, keep=D)
            D_new, new = D_new[:, :per_round], new[:per_round]
            if D_new.shape[1] == 0:
                break  # no violated dual constraint found: optimal over every pattern the search sees
            P_old = D.shape[1]
            D, gates = np.concatenate([D, D_new], 1), np.concatenate([gates, new])
            warm = extend_warm(solution.state, P_old, D.shape[1], len(y))
            solution = ReluADMM(X, y, D, gates, self.beta, rho=o["rho"], cone_scale=self.kappa).solve(warm=warm, **kw)
            total_iterations += solution.iterations
            history += [{**h, "iteration": h["iteration"] + total_iterations - solution.iterations} for h in solution.history]
        solution.iterations, solution.history = total_iterations, history
        return solution, D

