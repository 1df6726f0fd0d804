"""Lay out and draw a traced circuit in the visual language of neural circuit diagrams
(Abbott 2023): every axis of a tensor is its own wire, labelled with its size; operations are
boxes the wires enter and leave; axes an operation does not act on (the batch, the sequence
for a per-token linear map) run past it in grey — the paper's broadcasting; residual paths are
wires that skip ahead; a recurrence is a loop wire back into the operation, marked with the
number of calls.

Data flows top to bottom. An operation's row is its longest distance from the inputs, so
operations that read the same tensor (attention's query, key and value maps) sit side by side:
their parallel structure.
"""
from __future__ import annotations

from pathlib import Path

from .trace import Circuit, Operation, Wire

BOX_WIDTH, BOX_HEIGHT, ROW, COLUMN, AXIS_GAP = 2.4, 0.62, 1.75, 3.0, 0.09
STYLE = {"input": ("#e8f1fb", "#3a6ea5"), "output": ("#e9f6ea", "#3c8a44"), "module": ("#ffffff", "#222222"),
         "function": ("#fff6e0", "#a07010")}


def wire_label(shape: tuple[int, ...]) -> str:
    """The label of a tensor's wires: its axis sizes, outermost first ("3 × 16 × 64")."""
    return " × ".join(str(size) for size in shape) if shape else "scalar"


def passing_axes(wire: Wire, target: Operation) -> int:
    """How many leading axes of the wire run past the operation unchanged (broadcast over):
    the longest common prefix of the input and output shapes, leaving at least one axis acted on."""
    if target.kind != "module" or not target.output_shapes:
        return 0
    out = target.output_shapes[0]
    common = 0
    while common < min(len(wire.shape), len(out)) and wire.shape[common] == out[common]:
        common += 1
    return min(common, len(wire.shape) - 1)


def layout(circuit: Circuit) -> dict[int, tuple[float, float]]:
    """Centre of each operation's box: row = longest forward path from an input."""
    row = {op.index: 0 for op in circuit.operations}
    forward = [w for w in circuit.wires if not w.loop and w.source != w.target]
    for _ in range(len(circuit.operations)):  # longest path by relaxation (the graph without loops is a DAG)
        changed = False
        for wire in forward:
            if row[wire.target] < row[wire.source] + 1:
                row[wire.target] = row[wire.source] + 1
                changed = True
        if not changed:
            break
    last = max(row.values(), default=0)
    for op in circuit.operations:  # outputs at the bottom
        if op.kind == "output":
            row[op.index] = last
    by_row: dict[int, list[int]] = {}
    for op in circuit.operations:
        by_row.setdefault(row[op.index], []).append(op.index)
    centres = {}
    for r, members in by_row.items():
        for i, index in enumerate(members):
            centres[index] = ((i - (len(members) - 1) / 2) * COLUMN, -r * ROW)
    return centres


def _box_text(op: Operation) -> tuple[str, str]:
    top = op.name if op.kind in ("module", "function") else f"{op.kind}: {op.name}"
    bottom = op.detail
    if op.kind == "module" and op.path:
        bottom = f"{op.path}" + (f"  ({op.detail})" if op.detail else "")
    if op.calls > 1:
        top += f"  ×{op.calls}"
    return top, bottom


def draw(circuit: Circuit, paths: list[Path], title: str | None = None) -> None:
    """Draw the circuit and save it to each path (.svg keeps text as text; .png for cards)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    centres = layout(circuit)
    xs = [x for x, _ in centres.values()]
    ys = [y for _, y in centres.values()]
    width = max(xs) - min(xs) + BOX_WIDTH + 4.0
    height = max(ys) - min(ys) + ROW + 1.0
    with plt.rc_context({"svg.fonttype": "none", "font.family": "DejaVu Sans"}):
        fig, ax = plt.subplots(figsize=(max(5.0, width * 1.25), max(3.0, height * 1.0)))
        ax.set_xlim(min(xs) - BOX_WIDTH / 2 - 2.0, max(xs) + BOX_WIDTH / 2 + 2.0)
        ax.set_ylim(min(ys) - ROW / 2 - 0.4, max(ys) + ROW / 2 + 0.1)
        ax.axis("off")
        ops = {op.index: op for op in circuit.operations}
        for wire in circuit.wires:
            _draw_wire(ax, wire, ops[wire.target], centres, FancyArrowPatch)
        for op in circuit.operations:
            x, y = centres[op.index]
            fill, edge = STYLE[op.kind]
            rounded = "round,pad=0.02,rounding_size=0.25" if op.kind == "function" else "square,pad=0.02"
            ax.add_patch(FancyBboxPatch((x - BOX_WIDTH / 2, y - BOX_HEIGHT / 2), BOX_WIDTH, BOX_HEIGHT,
                                        boxstyle=rounded, facecolor=fill, edgecolor=edge, linewidth=1.2, zorder=3))
            top, bottom = _box_text(op)
            ax.text(x, y + (0.09 if bottom else 0), top, ha="center", va="center", fontsize=8.5, zorder=4,
                    fontweight="bold" if op.kind == "module" else "normal")
            if bottom:
                ax.text(x, y - 0.17, bottom, ha="center", va="center", fontsize=6.5, color="#555555", zorder=4)
        ax.set_title(title or circuit.model, fontsize=10)
        ax.text(0.0, 0.0, "wires: one per tensor axis, labelled with its size; grey: axes the box is applied "
                "across (broadcast); dashed: a loop back into a box applied several times",
                transform=ax.transAxes, fontsize=6.5, color="#666666", va="bottom")
        fig.tight_layout()
        for path in paths:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".partial" + path.suffix)
            fig.savefig(tmp, dpi=110, format=path.suffix.lstrip("."))
            tmp.replace(path)  # no half-written diagram under the real name
        plt.close(fig)


def _draw_wire(ax, wire: Wire, target: Operation, centres, FancyArrowPatch) -> None:
    (x0, y0), (x1, y1) = centres[wire.source], centres[wire.target]
    axes = max(1, len(wire.shape))
    grey = passing_axes(wire, target)
    label = wire_label(wire.shape)
    if wire.loop or wire.source == wire.target:
        # recurrence: out of the box's right side and back into its top
        start, end = (x0 + BOX_WIDTH / 2, y0), (x1 + BOX_WIDTH / 4, y1 + BOX_HEIGHT / 2)
        ax.add_patch(FancyArrowPatch(start, end, connectionstyle="arc3,rad=-1.4", arrowstyle="-|>", mutation_scale=8,
                                     linestyle="--", color="#7a3fa0", linewidth=1.0, zorder=2))
        ax.text(max(start[0], end[0]) + 0.55, (start[1] + end[1]) / 2 + 0.2, label, fontsize=6.5, color="#7a3fa0",
                ha="left", va="center", zorder=4)
        return
    skip = y0 - y1 > ROW * 1.5  # a residual path jumping over rows
    rad = 0.35 if skip and x0 <= x1 else (-0.35 if skip else 0.0)
    for i in range(axes):
        offset = (i - (axes - 1) / 2) * AXIS_GAP
        colour = "#9a9a9a" if i < grey else "#222222"
        ax.add_patch(FancyArrowPatch((x0 + offset, y0 - BOX_HEIGHT / 2), (x1 + offset, y1 + BOX_HEIGHT / 2),
                                     connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>" if i == axes - 1 else "-",
                                     mutation_scale=7, color=colour, linewidth=0.9, zorder=1))
    if skip:  # beside the arc's bulge (arc3 bends a downward wire to its left for rad > 0)
        bulge = (x0 + x1) / 2 - rad * (y0 - y1) * 0.5
        x_text, align = (bulge - axes * AXIS_GAP / 2 - 0.08, "right") if rad > 0 else (bulge + axes * AXIS_GAP / 2 + 0.08, "left")
    else:
        x_text, align = (x0 + x1) / 2 + axes * AXIS_GAP / 2 + 0.08, "left"
    ax.text(x_text, (y0 + y1) / 2, label, fontsize=6.5, ha=align, va="center",
            color="#333333", zorder=4, bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5, "alpha": 0.8})
