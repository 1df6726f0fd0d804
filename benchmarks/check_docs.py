"""Check every number quoted in docs/BENCHMARKS.md and docs/FINDINGS.md against its JSON.

The docs mark where each figure comes from with HTML comments (invisible when rendered):

    <!-- check: benchmarks/results/training-overhead.json
    CPU time of the training steps | {9.37} s | {9.63} s | **{1.028}** => median(j.plain_cpu_s), median(j.zoo_cpu_s), j.overhead_ratio_cpu
    -->

`check:` names one or more JSON files (`PATH`, read as `j`, or `name=PATH ...`), then lines of
`TEXT => EXPR`. TEXT, with its braces removed, must occur in the text that follows the comment
(anywhere in the marker's section, between the headings around it; runs of whitespace match
any whitespace, so prose may wrap).
The numbers in braces (all of TEXT's numbers when it has no braces) are compared with the values
of EXPR, a Python expression over the JSON (dict keys read as attributes: `j.share.decode.attn`)
and the helpers below. A figure matches when it equals the JSON value rounded to the figure's
own precision ("0.34" matches 0.3387, "2 885" matches 2884.6, "1.2e-7" matches 1.23e-7);
`EXPR ~ 10%` or `EXPR ~ 0.05` widens that for figures the doc marks as approximate (~), and
`every(VALUES)` checks one written figure against each of several values, `approx(VALUE, TOL)`
widens one value of a list.

    <!-- check-table: b=docs/figures/drop/bench-paired.json
    col 2 => run(b, key).prefill_speedup
    row 15 attention => ...
    -->

`check-table:` applies to the first markdown table after it. `key` is the row's first cell
(markdown emphasis removed; `key:` EXPR over `cells` redefines it, `skip:` EXPR skips rows).
`col N => EXPR` gives the numbers of column N (1-based) of every row (None: the cell has
none; `n` is how many the cell writes, for columns like "11.9 (+4 %)" / "3129"); `row LABEL => EXPR` gives all the numbers of the row whose key starts with LABEL,
its first cell excluded. Every table in the checked docs must have a `check-table:` marker or
a `<!-- no-check: why -->` one, so a new table cannot go unchecked.

Every JSON a marker names must be written by a command shown in the same doc or in one of the
two checked docs (its path appears there in a code span or block), so each figure leads to the
command that regenerates it.

    python benchmarks/check_docs.py            # the two docs; exit 1 listing each mismatch
    python benchmarks/check_docs.py --list     # every checked figure with its source

The expressions are the docs' own code, evaluated like any other code in this repository.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DOCS = ("docs/BENCHMARKS.md", "docs/FINDINGS.md")

MARKER = re.compile(r"<!--\s*(check|check-table|no-check):(.*?)-->", re.S)
HEADING = re.compile(r"^#+ ", re.M)
# A number as the docs write it: optional sign (ASCII or Unicode minus) only where it cannot be
# a range dash ("3-13"), thousands separated by spaces ("2 885", "49 152"), optional exponent.
NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>[-+−]?)(?P<int>\d{1,3}(?:[ \u202f\u00a0]\d{3})+(?![\d.])|\d+)(?P<frac>\.\d+)?"
    r"(?:e(?P<exp>[-+−]?\d+))?(?![\w])"
)


class AttrDict(dict):
    """JSON objects whose keys read as attributes (`j.share.decode.attn`)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no key {name!r} (keys: {', '.join(map(str, self))})") from None


def load_json(path: Path):
    return json.loads(path.read_text(), object_hook=AttrDict)


@dataclass
class Figure:
    """One number in a doc and where its value comes from."""

    doc: str
    line: int
    text: str        # the number as written
    value: float     # the number read from the doc
    tolerance: float
    expected: float | None
    source: str      # the expression and its JSON files, for the message

    def ok(self) -> bool:
        if self.expected is None or (isinstance(self.expected, float) and math.isnan(self.expected)):
            return False
        return abs(self.value - self.expected) <= self.tolerance * (1 + 1e-9) + 1e-12


def parse_number(match: re.Match) -> tuple[float, float]:
    """(value, half a unit of the last written digit) of a NUMBER match."""
    integer = re.sub(r"\D", "", match["int"])
    frac = match["frac"] or ""
    sign = -1.0 if match["sign"] in ("-", "−") else 1.0
    exp = int(match["exp"].replace("−", "-")) if match["exp"] else 0
    value = sign * float(integer + frac) * 10.0**exp
    decimals = len(frac) - 1 if frac else 0
    return value, 0.5 * 10.0 ** (exp - decimals)


def numbers_in(text: str) -> list[tuple[str, float, float]]:
    return [(m.group(0), *parse_number(m)) for m in NUMBER.finditer(text)]


def helpers() -> dict:
    def run_of(data, kind, k=None):
        """The entry of a list of runs with this kind (and k): bench_drop and gpu_check JSON."""
        runs = data.runs if "runs" in data else data.drop_speed.runs
        found = [r for r in runs if r.kind == kind and (k is None or r.k == k)]
        if len(found) != 1:
            raise LookupError(f"{len(found)} runs with kind={kind!r}, k={k!r}")
        return found[0]

    def sweep_row(data, mode, k):
        """The perplexity row of a bench_drop --sweep JSON for this mode and k."""
        if k == 0:
            mode = "none"
        found = [r for r in data.rows if r.mode == mode and r.k == k]
        if len(found) != 1:
            raise LookupError(f"{len(found)} sweep rows with mode={mode!r}, k={k}")
        return found[0]

    def sweep_cell(data, mode, k):
        """[perplexity, its change against the full model in per cent] of a sweep row."""
        value = sweep_row(data, mode, k).perplexity
        return [value, pct(value, sweep_row(data, "none", 0).perplexity)]

    def over(result, layer, field):
        """One field of every model pair's comparison at this layer (zoo-analysis match results.json)."""
        values = [c[field] for c in result.comparisons if c.layer == layer]
        if not values:
            raise LookupError(f"no comparisons at layer {layer!r}")
        return values

    def pct(new, old):
        """Change in per cent."""
        return 100.0 * (new - old) / old

    return dict(every=Every, approx=Approx, median=statistics.median, mean=statistics.fmean, min=min, max=max, abs=abs, sum=sum,
                len=len, sorted=sorted, round=round, int=int, float=float, range=range, zip=zip,
                enumerate=enumerate, any=any, all=all, list=list, run_of=run_of, sweep_row=sweep_row,
                pct=pct, sweep_cell=sweep_cell, over=over, math=math)


def evaluate(expr: str, scope: dict) -> tuple[list, str | None]:
    """Values of EXPR as a list (a scalar becomes one value), and a tolerance spec if given."""
    tol = None
    if " ~ " in expr:
        expr, tol = expr.rsplit(" ~ ", 1)
    value = eval(compile(expr.strip(), "<doc marker>", "eval"), {"__builtins__": {}, **scope})  # noqa: S307
    values = list(value) if isinstance(value, (list, tuple)) and not isinstance(value, Every) else [value]
    return values, tol


def widen(tolerance: float, value: float, tol: str | None) -> float:
    if tol is None:
        return tolerance
    tol = tol.strip()
    if tol.endswith("%"):
        return max(tolerance, abs(value) * float(tol[:-1]) / 100)
    return max(tolerance, float(tol))


class Every(list):
    """`every(values)`: one written figure that must match each of these values (e.g. "~60 %" for
    four measured shares)."""


class Approx(float):
    """`approx(value, tol)`: one value that a "~" figure matches within tol (a number, or "10%")."""

    def __new__(cls, value, tol):
        self = super().__new__(cls, value)
        self.tol = str(tol)
        return self


class DocError(Exception):
    pass


def strip_md(cell: str) -> str:
    """A cell's text without emphasis and code marks (for row keys)."""
    return re.sub(r"[*`]", "", cell).strip()


def prose(cell: str) -> str:
    """A cell's text without its code spans: `argmax(axis=0)` holds no figure."""
    return re.sub(r"`[^`]*`", " ", cell).replace("*", "")


def table_rows(lines: list[str], start: int) -> tuple[int, list[tuple[int, list[str]]]]:
    """The first markdown table at or after line `start`: (header line, [(line, cells)...])."""
    i = start
    while i < len(lines) and not lines[i].lstrip().startswith("|"):
        i += 1
    if i + 1 >= len(lines):
        raise DocError("no table after the check-table marker")
    header = i
    rows = []
    i += 2  # header and |---| separator
    while i < len(lines) and lines[i].lstrip().startswith("|"):
        cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
        rows.append((i, cells))
        i += 1
    return header, rows


def parse_sources(spec: str, doc_text: str, doc: str) -> dict:
    doc_text = MARKER.sub("", doc_text)  # a marker naming a file is not a command writing it
    scope = helpers()
    for item in spec.split():
        name, _, path = item.rpartition("=")
        name = name or "j"
        file = ROOT / path
        if not file.exists():
            raise DocError(f"{path} does not exist")
        if not command_writes(doc_text, path) and not any(
                command_writes(MARKER.sub("", (ROOT / other).read_text()), path) for other in DEFAULT_DOCS):
            raise DocError(f"{path} is named by a marker but no command in {doc} or {' / '.join(DEFAULT_DOCS)} "
                           "writes it (show the command, with the path, in a code span or block)")
        scope[name] = load_json(file)
        scope.setdefault("_paths", []).append(path)
    return scope


def command_writes(doc_text: str, path: str) -> bool:
    """Does a code span or block of the doc contain this path (the command that writes it)?"""
    fences = re.findall(r"```.*?```", doc_text, re.S)
    spans = re.findall(r"`[^`]+`", re.sub(r"```.*?```", "", doc_text, flags=re.S))
    for block in fences + spans:
        if path in block.replace("\\\n", " "):
            return True
    # commands indented as code (four spaces) count too
    return any(line.startswith("    ") and path in line for line in doc_text.splitlines())


def check_doc(doc: str) -> tuple[list[Figure], list[str]]:
    """All figures of one doc, and the problems that are not number mismatches."""
    text = (ROOT / doc).read_text()
    lines = text.splitlines()
    line_of = [0]
    for line in lines:
        line_of.append(line_of[-1] + len(line) + 1)

    def line_at(offset: int) -> int:
        lo, hi = 0, len(lines)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if line_of[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1

    figures: list[Figure] = []
    problems: list[str] = []
    markers = list(MARKER.finditer(text))
    covered_tables: set[int] = set()
    for n, marker in enumerate(markers):
        kind, body = marker.group(1), marker.group(2)
        where = f"{doc}:{line_at(marker.start())}"
        end_line = line_at(marker.end())  # 1-based line of the comment's end
        if kind == "no-check":
            try:
                covered_tables.add(table_rows(lines, end_line)[0])
            except DocError:
                pass
            continue
        spec, *entries = [s for s in body.strip().splitlines() if s.strip()]
        try:
            scope = parse_sources(spec, text, doc)
        except DocError as error:
            problems.append(f"{where}: {error}")
            continue
        sources = ", ".join(scope["_paths"])
        if kind == "check":
            # the marker's section: from the heading above it to the next heading, markers left out
            starts = [h.start() for h in HEADING.finditer(text)]
            block_start = max([0] + [h for h in starts if h < marker.start()])
            block_end = min([len(text)] + [h for h in starts if h > marker.start()])
            block = MARKER.sub(lambda m: " " * len(m.group(0)), text[block_start:block_end])
            for entry in entries:
                literal, sep, expr = entry.partition(" => ")
                if not sep:
                    problems.append(f"{where}: marker line without ' => ': {entry.strip()}")
                    continue
                literal = literal.strip()
                searched = literal.replace("{", "").replace("}", "")
                pattern = r"\s+".join(re.escape(part) for part in searched.split())
                found = re.search(pattern, block)
                if not found:
                    problems.append(f"{where}: the doc no longer says {searched!r} below this marker")
                    continue
                braced = re.findall(r"\{([^}]*)\}", literal)
                written = [num for part in braced for num in numbers_in(part)] if braced else numbers_in(prose(searched))
                figures += compare(doc, line_at(block_start + found.start()), written, expr, scope, sources,
                                   problems, where)
        else:  # check-table
            try:
                header, rows = table_rows(lines, end_line)
            except DocError as error:
                problems.append(f"{where}: {error}")
                continue
            covered_tables.add(header)
            key_expr = skip_expr = None
            cols, row_specs = [], []
            for entry in entries:
                entry = entry.strip()
                if entry.startswith("key:"):
                    key_expr = entry[4:].strip()
                elif entry.startswith("skip:"):
                    skip_expr = entry[5:].strip()
                elif entry.startswith("col ") and " => " in entry:
                    index, expr = entry[4:].split(" => ", 1)
                    cols.append((int(index), expr))
                elif entry.startswith("row ") and " => " in entry:
                    label, expr = entry[4:].split(" => ", 1)
                    row_specs.append([label.strip(), expr, False])
                else:
                    problems.append(f"{where}: unreadable check-table line: {entry}")
            for line_no, cells in rows:
                row_scope = dict(scope, cells=[strip_md(c) for c in cells])
                try:
                    key = eval(key_expr, {"__builtins__": {}, **row_scope}) if key_expr else row_scope["cells"][0]  # noqa: S307
                    row_scope["key"] = key
                    if skip_expr and eval(skip_expr, {"__builtins__": {}, **row_scope}):  # noqa: S307
                        continue
                except Exception as error:  # noqa: BLE001 - reported with the doc line
                    problems.append(f"{doc}:{line_no + 1}: key/skip failed: {type(error).__name__}: {error}")
                    continue
                for index, expr in cols:
                    if index - 1 >= len(cells):
                        problems.append(f"{doc}:{line_no + 1}: no column {index}")
                        continue
                    written = numbers_in(prose(cells[index - 1]))
                    row_scope["n"] = len(written)  # lets a column whose cells vary in form slice its values
                    figures += compare(doc, line_no + 1, written, expr, row_scope,
                                       sources, problems, f"{doc}:{line_no + 1}", allow_none=True)
                for spec_ in row_specs:
                    if str(row_scope["cells"][0]).startswith(spec_[0]):
                        spec_[2] = True
                        written = [num for c in cells[1:] for num in numbers_in(prose(c))]
                        figures += compare(doc, line_no + 1, written, spec_[1], row_scope, sources, problems,
                                           f"{doc}:{line_no + 1}")
            for label, _, used in row_specs:
                if not used:
                    problems.append(f"{where}: the table has no row {label!r}")
    for i, line in enumerate(lines):
        starts_table = line.lstrip().startswith("|") and (i == 0 or not lines[i - 1].lstrip().startswith("|"))
        if starts_table and i not in covered_tables and not in_code(lines, i):
            problems.append(f"{doc}:{i + 1}: table without a check-table or no-check marker")
    return figures, problems


def in_code(lines: list[str], index: int) -> bool:
    return sum(1 for line in lines[:index] if line.lstrip().startswith("```")) % 2 == 1


def compare(doc, line, written, expr, scope, sources, problems, where, allow_none=False) -> list[Figure]:
    try:
        values, tol = evaluate(expr, scope)
    except Exception as error:  # noqa: BLE001 - a broken marker is reported with its line
        problems.append(f"{where}: {expr.strip()} failed: {type(error).__name__}: {error}")
        return []
    if allow_none and values == [None]:
        values = []
    if len(values) != len(written):
        problems.append(f"{doc}:{line}: {len(written)} number(s) written ({', '.join(w[0] for w in written) or 'none'}) "
                        f"but {expr.strip()} gives {len(values)}")
        return []
    out = []
    for (shown, value, tolerance), expected in zip(written, values):
        for one in (expected if isinstance(expected, Every) else [expected]):  # every(): each must match
            own = one.tol if isinstance(one, Approx) else tol
            one = None if one is None else float(one)
            out.append(Figure(doc, line, shown, value, widen(tolerance, one or 0.0, own), one,
                              f"{expr.strip()} in {sources}"))
    return out


def check(docs=DEFAULT_DOCS) -> tuple[list[Figure], list[str]]:
    """Every figure of the docs and every failure message (mismatches and broken markers)."""
    figures, problems = [], []
    for doc in docs:
        found, trouble = check_doc(doc)
        figures += found
        problems += trouble
    for figure in figures:
        if not figure.ok():
            problems.append(f"{figure.doc}:{figure.line}: the doc says {figure.text} but the JSON gives "
                            f"{figure.expected!r} ({figure.source})")
    return figures, problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("docs", nargs="*", default=list(DEFAULT_DOCS), help="docs to check, relative to the repo")
    parser.add_argument("--list", action="store_true", help="print every checked figure and its source")
    args = parser.parse_args(argv)
    figures, problems = check(args.docs)
    if args.list:
        for f in figures:
            print(f"{f.doc}:{f.line}: {f.text} = {f.expected!r:.12} <- {f.source}")
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"{len(figures)} figures checked in {len(args.docs)} docs: "
          f"{'all match' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
