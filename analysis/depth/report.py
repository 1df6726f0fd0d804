"""The depth score, the report of a run (JSON, Markdown, figures) and :func:`run_depth`."""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import torch

from ..batching import pad_id
from ..errors import UserError
from ..models import as_adapter
from ..prompts import describe_tokens, load_prompts
from ..runner import staged_folder
from .names import ANALYSES
from .contrib import ContributionResult, contributions
from .lens import LensResult, logit_lens
from .maps import LinearMapResult, check_same_tokenizer, linear_maps
from .skip import SkipResult, skip_effects, skip_output_refusal

__all__ = ["ANALYSES", "depth_score", "DepthReport", "run_depth"]



NOT_REQUESTED = {
    "contributions": "not requested (--analyses)",
    "lens": "not requested (--analyses)",
    "skip": "not requested: the skip test is opt-in (--analyses ...,skip; the run prints its estimated time)",
    "map": "not requested (--analyses ...,map with --compare)",
}


def depth_score(effects: Sequence[float]) -> float:
    """Σ l·e_l / Σ e_l over layers l = 0..L-1 (NaN when every effect is 0)."""
    values = torch.as_tensor(list(effects), dtype=torch.float64).clamp_min(0)
    total = float(values.sum())
    if total == 0:
        return math.nan
    return float((torch.arange(len(values), dtype=torch.float64) * values).sum() / total)


@dataclass
class DepthReport:
    model: str
    family: str
    num_layers: int
    hidden_size: int
    settings: dict
    contributions: ContributionResult | None = None
    skip: SkipResult | None = None
    lens: LensResult | None = None
    linear_map: LinearMapResult | None = None
    timings: dict = field(default_factory=dict)
    #: why each analysis that did not run did not (analysis name -> reason)
    not_run: dict = field(default_factory=dict)
    #: the cost estimate printed before the run (FLOPs, the measured rate, seconds), from the CLI
    estimate: dict | None = None

    def depth_scores(self) -> dict:
        scores = {}
        L = self.num_layers
        if self.contributions is not None:
            ratios = self.contributions.layer_ratio
            scores["relative_contribution"] = depth_score(ratios)
            # layer 0's ratio (often ~10: it rewrites the embedding) dominates the score; without it
            # (layers keep their indices)
            scores["relative_contribution_without_layer0"] = depth_score([0.0] + list(ratios[1:]))
        if self.skip is not None:
            for kind in self.skip.kinds:
                scores[f"skip_{kind}_output"] = depth_score(self.skip.output_effect[kind])
                scores[f"skip_{kind}_later_layers"] = depth_score(self.skip.later_effect(kind))
        return {k: {"layer": v, "relative": v / max(1, L - 1)} for k, v in scores.items()}

    def to_dict(self) -> dict:
        data = {
            "model": self.model,
            "family": self.family,
            "num_layers": self.num_layers,
            "hidden_size": self.hidden_size,
            "settings": self.settings,
            "depth_scores": self.depth_scores(),
            "timings_s": self.timings,
            "not_run": self.not_run,
        }
        if self.estimate is not None:
            data["estimate"] = self.estimate
        for name in ("contributions", "skip", "lens", "linear_map"):
            value = getattr(self, name)
            data[name] = None if value is None else value.to_dict()
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, default=float)

    def halves(self, without_layer0: bool = False) -> dict:
        """Mean relative contribution ‖Δh‖/‖h‖ in the first and the second half of the layers
        (``without_layer0``: the first half without layer 0)."""
        ratios = self.contributions.layer_ratio
        half = len(ratios) // 2
        first = ratios[1:half] if without_layer0 else ratios[:half]
        return {"first_half": sum(first) / max(1, len(first)),
                "second_half": sum(ratios[half:]) / max(1, len(ratios) - half)}

    def figures(self) -> list[tuple[str, str]]:
        """(file, what it shows) for every figure :meth:`plot` writes, in order."""
        from .plots import figure_list

        return figure_list(self)

    def to_markdown(self) -> str:
        settings = {k: v for k, v in self.settings.items() if k != "inputs"}
        lines = [f"# Depth probes: {self.model}", "",
                 f"{self.family}, {self.num_layers} layers, hidden size {self.hidden_size}. "
                 f"Settings: `{json.dumps(settings)}`.", ""]
        inputs = self.settings.get("inputs")
        if inputs:
            lines += [f"Inputs: {inputs['blocks']} blocks, {inputs['tokens']} tokens ({inputs['kind']}: {inputs['source']}; "
                      f"add_special_tokens {inputs['add_special_tokens']}); token ids sha256 `{inputs['token_ids_sha256']}`.", ""]
        ran = [name for name in ANALYSES if name not in self.not_run]
        timing = {"contributions": "contributions", "lens": "lens", "skip": "skip", "map": "linear_map"}
        lines += ["## What ran", ""]
        lines += [f"- **{name}**" + (f" ({self.timings[timing[name]]:.1f} s)" if timing[name] in self.timings else "")
                  for name in ran]
        lines += [f"- not run: **{name}**: {reason}" for name, reason in self.not_run.items()]
        lines.append("")
        captions = dict(self.figures())
        drawn = set(captions)

        def figure(name: str) -> list[str]:
            return [f"![{name}]({name})", "", f"*{name}*: {captions[name]}", ""] if name in drawn else []

        if self.contributions is not None:
            c = self.contributions
            excluded = ", ".join(map(str, c.excluded_positions)) or "none"
            halves, without = self.halves(), self.halves(without_layer0=True)
            scores = self.depth_scores()
            lines += ["## Contributions", "",
                      f"Averaged over {c.num_tokens} tokens; positions excluded from the averages: {excluded}.",
                      f"Mean ‖Δh‖/‖h‖ with layer 0: first half {halves['first_half']:.3f}, second half "
                      f"{halves['second_half']:.3f}; without layer 0 (whose ratio is {c.layer_ratio[0]:.2f}): first half "
                      f"{without['first_half']:.3f}, second half {without['second_half']:.3f}.",
                      f"Depth score of ‖Δh‖/‖h‖: {scores['relative_contribution']['layer']:.2f} with layer 0, "
                      f"{scores['relative_contribution_without_layer0']['layer']:.2f} without.", ""]
            lines += figure("contributions.png") + figure("outliers.png")
            lines += ["| layer | ‖a‖/‖h‖ | ‖m‖/‖h+a‖ | ‖Δh‖/‖h‖ | cos(a,h) | cos(m,h+a) | cos(Δh,h) | top dim @pos0 (share) | top dim @rest (share) | top dim, all tokens (share of E‖h‖²) |",
                      "|---|---|---|---|---|---|---|---|---|---|"]
            for l in range(c.num_layers):
                o = c.outliers[l] if c.outliers else None
                first = f"{o['first_position'][0]['dim']} ({o['first_position'][0]['share']:.2f})" if o else ""
                rest = f"{o['other_positions'][0]['dim']} ({o['other_positions'][0]['share']:.2f})" if o else ""
                every = (f"{o['all_positions'][0]['dim']} ({o['all_positions'][0]['share']:.2f})"
                         if o and o.get("all_positions") else "")
                lines.append(f"| {l} | {c.attn_ratio[l]:.3f} | {c.mlp_ratio[l]:.3f} | {c.layer_ratio[l]:.3f} | "
                             f"{c.attn_cos[l]:.3f} | {c.mlp_cos[l]:.3f} | {c.layer_cos[l]:.3f} | {first} | {rest} | {every} |")
            lines.append("")
        if self.skip is not None:
            s = self.skip
            lines += ["## Skip effects", "",
                      f"Mode `{s.mode}` (first {s.keep_first} position(s) never skipped), {s.num_prompts} prompts, "
                      f"positions per prompt: {len(s.positions[0]) if s.positions else 0}.", ""]
            for kind in s.kinds:
                lines += figure(f"skip_{kind}.png")
            lines += figure("skip_output.png")
            if "skip_output.png" not in drawn:
                lines += [f"*skip_output.png* not drawn: {skip_output_refusal(s)}", ""]
            lines += [
                      "| layer | " + " | ".join(f"{k}: max effect on later layers | {k}: max ‖p−p′‖" for k in s.kinds) + " |",
                      "|---|" + "---|---|" * len(s.kinds)]
            for l in range(self.num_layers):
                cells = []
                for kind in s.kinds:
                    cells += [f"{s.later_effect(kind)[l]:.3f}", f"{s.output_effect[kind][l]:.3f}"]
                lines.append(f"| {l} | " + " | ".join(cells) + " |")
            lines.append("")
        if self.lens is not None:
            lens = self.lens
            if lens.exact:
                lines += ["## Logit lens", "",
                          f"KL(final ‖ lens) in nats and top-{lens.k} overlap, {lens.num_tokens} tokens (exact).", "",
                          *figure("logit_lens.png"),
                          "| h_l | KL | top-k overlap |", "|---|---|---|"]
                lines += [f"| {l} | {lens.kl[l]:.3f} | {lens.topk_overlap[l]:.3f} |" for l in range(len(lens.kl))]
            else:
                lines += ["## Logit lens", "",
                          f"KL(final ‖ lens) in nats and top-{lens.k} overlap, estimated from a random "
                          f"{lens.sampled_tokens} of the {lens.num_tokens} tokens ({100 * lens.sample:.1f} % of each "
                          "batch, to keep the lens within ~2 forwards; `--lens-sample 1` for the exact lens), "
                          "± one standard error.", "",
                          *figure("logit_lens.png"),
                          "| h_l | KL | ± | top-k overlap | ± |", "|---|---|---|---|---|"]
                lines += [f"| {l} | {lens.kl[l]:.3f} | {lens.kl_se[l]:.3f} | {lens.topk_overlap[l]:.3f} | "
                          f"{lens.topk_overlap_se[l]:.3f} |" for l in range(len(lens.kl))]
            lines.append("")
        if self.linear_map is not None:
            m = self.linear_map
            lines += ["## Linear maps", "",
                      f"{m.source} → {m.target}: ridge {m.ridge}, {m.num_train} train / {m.num_test} held-out tokens. "
                      "Best target layer for each source layer: " + ", ".join(
                          f"{s}→{t}" for s, t in enumerate(m.best_target())) + ".", "", *figure("linear_map.png")]
        scores = self.depth_scores()
        if scores:
            lines += ["## Depth scores", "", "| effect | Σl·e_l/Σe_l | relative (÷ L−1) |", "|---|---|---|"]
            lines += [f"| {k} | {v['layer']:.2f} | {v['relative']:.3f} |" for k, v in scores.items()]
            lines.append("")
        return "\n".join(lines)

    def plot(self, out_dir: str) -> list[str]:
        from .plots import plot_report

        return plot_report(self, out_dir)

    def write_into(self, folder: str) -> None:
        """report.json, report.md and the figures, straight into an existing ``folder``."""
        with open(os.path.join(folder, "report.json"), "w") as handle:
            handle.write(self.to_json())
        with open(os.path.join(folder, "report.md"), "w") as handle:
            handle.write(self.to_markdown())
        self.plot(folder)

    def write(self, out_dir: str) -> list[str]:
        """Write report.json, report.md and the figures into a new folder ``out_dir``.

        The files are written into a temporary sibling folder that is renamed at the end, so
        a failure never leaves a half-written ``out_dir``.
        """
        out_dir = os.path.abspath(out_dir)
        if os.path.exists(out_dir) and os.listdir(out_dir):
            raise UserError(f"output folder {out_dir} exists and is not empty")
        with staged_folder(out_dir, prefix=".depth-") as staging:
            self.write_into(staging)
        return sorted(os.path.join(out_dir, f) for f in os.listdir(out_dir))


def run_depth(
    model,
    tokenizer,
    *,
    name: str = "model",
    compare=None,
    compare_tokenizer=None,
    compare_name: str = "compare",
    prompts: str | None = None,
    num_prompts: int = 16,
    max_tokens: int = 256,
    batch_size: int = 8,
    exclude_positions: Sequence[int] = (0,),
    analyses: Iterable[str] = ("contributions", "skip", "lens", "map"),
    skip_prompts: int | None = None,
    skip_positions: int = 4,
    skip_mode: str = "from",
    skip_max_tokens: int | None = None,
    map_tokens: int = 4096,
    lens_sample: float = 1.0,
    progress: bool = True,
    tokens: Sequence[torch.Tensor] | None = None,
    inputs: dict | None = None,
    add_special_tokens: bool = True,
) -> DepthReport:
    """Run the chosen analyses on one model (and the linear map to ``compare``).

    ``tokens``: exact token blocks (1-D id tensors) instead of ``prompts`` (``inputs`` then says
    where they came from); either way report.json records the ids' sha256. ``lens_sample`` < 1
    evaluates the logit lens on that share of the tokens (with standard errors; the CLI sizes it
    with :func:`analysis.depth.resources.auto_lens_sample`)."""
    adapter = as_adapter(model)
    analyses = list(analyses)
    unknown = set(analyses) - set(ANALYSES)
    if unknown:
        raise UserError(f"unknown analyses {sorted(unknown)} (contributions, skip, lens, map)")
    if compare is not None:
        check_same_tokenizer(tokenizer, compare_tokenizer, name, compare_name)
    if tokens is None:
        tokens = load_prompts(tokenizer, prompts, num_prompts=num_prompts, max_tokens=max_tokens,
                              add_special_tokens=add_special_tokens)
        inputs = describe_tokens(tokens, prompts or "builtin", "text", add_special_tokens)
    else:
        tokens = [torch.as_tensor(t, dtype=torch.long).reshape(-1) for t in tokens]
        inputs = inputs or describe_tokens(tokens, "token ids (API)", "token-ids", None)
    pad = pad_id(tokenizer)
    settings = {"prompts": inputs["source"] if inputs["kind"] != "text" else prompts or "builtin (pydoc_data.topics)",
                "inputs": inputs, "num_prompts": len(tokens),
                "max_tokens": max_tokens, "batch_size": batch_size,
                "excluded_positions": sorted(set(int(p) for p in exclude_positions)),
                "analyses": analyses}
    report = DepthReport(name, adapter.family_name, adapter.num_layers, adapter.hidden_size, settings)
    for analysis in ANALYSES:
        if analysis == "map" and "map" in analyses and compare is None:
            report.not_run["map"] = "needs a second model (--compare) with the same tokenizer"
        elif analysis not in analyses:
            report.not_run[analysis] = NOT_REQUESTED[analysis]
    if "contributions" in analyses:
        start = time.perf_counter()
        report.contributions = contributions(adapter, tokens, batch_size=batch_size,
                                             exclude_positions=exclude_positions, pad_id=pad, progress=progress)
        report.timings["contributions"] = time.perf_counter() - start
    if "lens" in analyses:
        start = time.perf_counter()
        report.lens = logit_lens(adapter, tokens, batch_size=min(batch_size, 4), sample=lens_sample,
                                 exclude_positions=exclude_positions, pad_id=pad, progress=progress)
        settings["lens_sample"] = lens_sample
        report.timings["lens"] = time.perf_counter() - start
    if "skip" in analyses:
        start = time.perf_counter()
        chosen = tokens[: skip_prompts or len(tokens)]
        if skip_max_tokens:
            chosen = [p[:skip_max_tokens] for p in chosen]
        report.skip = skip_effects(adapter, chosen, num_positions=skip_positions, mode=skip_mode, progress=progress)
        settings.update(skip_prompts=len(chosen), skip_positions=skip_positions, skip_mode=skip_mode,
                        skip_max_tokens=skip_max_tokens or max_tokens)
        report.timings["skip"] = time.perf_counter() - start
    if compare is not None and "map" in analyses:
        start = time.perf_counter()
        report.linear_map = linear_maps(adapter, compare, tokens, source_name=name, target_name=compare_name,
                                        max_tokens=map_tokens, batch_size=batch_size,
                                        exclude_positions=exclude_positions, pad_id=pad, progress=progress)
        settings["map_tokens"] = map_tokens
        report.timings["linear_map"] = time.perf_counter() - start
    return report
