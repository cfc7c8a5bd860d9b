"""Run every benchmark in `benchmarks/` and write the benchmarks page, `docs/benchmarks.md` (plus a memory plot).

    python benchmarks/run_all.py            # all benchmarks, then the page
    python benchmarks/run_all.py --report   # only rebuild the page from docs/benchmark_data/*.json
    python benchmarks/run_all.py --report --docs DIR   # the same in another docs folder (the tests' copy)

Each `bench_*.py` runs in its own process (so one's memory does not weigh on the next) and saves its numbers as
JSON in `benchmarks/results/`, which is not committed. The page is rendered from `docs/benchmark_data/`, which is:
each results file there is first copied over (dated with the day it was measured), so the committed data rebuild
the page and every figure on it comes from a run. Summary rows written by hand (medians of several runs, figures
timed by hand, benchmarks whose results are not kept) are in `docs/benchmark_data/manual.json`, each group dated.
The page holds the summary only; the history of runs is `docs/benchmarks_history.md`, written by hand and never
touched here.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import REPO, RESULTS_DIR  # noqa: E402

DOCS = REPO / "docs"
# Inside the docs folder: the page, its data and the plot drawn here; the history is written by hand, only linked.
REPORT, DATA, MANUAL, PLOT = "benchmarks.md", "benchmark_data", "manual.json", "convert_memory.svg"
HISTORY = "benchmarks_history.md"
# The plots on the page: the file in docs/, the benchmark that draws it, what it shows.
PLOTS = (
    ("convert_memory.svg", "convert", "The converter's memory (RSS) over time, at 7B's and 70B's layer shapes"),
    ("serving_speed.svg", "engine_speed", "Tokens/s and time to first token against clients, for both workloads"),
)

Row = tuple[str, str, str]  # what, target, measured


def run_benchmarks() -> None:
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"== {script.name}", flush=True)
        start = time.perf_counter()
        subprocess.run([sys.executable, str(script)], check=True, cwd=REPO)
        print(f"   ({time.perf_counter() - start:.0f} s)", flush=True)


def collect_results(data_dir: Path, results_dir: Path = RESULTS_DIR) -> None:
    """Copy each results file of a run into docs/benchmark_data, dated; an older one never replaces newer data."""
    data_dir.mkdir(exist_ok=True)
    for path in sorted(results_dir.glob("*.json")):
        results = json.loads(path.read_text())
        if "date" not in results:  # saved before the benchmarks recorded the day: the file's own
            modified = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.timezone.utc)
            results["date"] = modified.date().isoformat()
        target = data_dir / path.name
        if target.exists() and json.loads(target.read_text())["date"] > results["date"]:
            print(f"kept {target}: newer than {path}")
            continue
        target.write_text(json.dumps(results, indent=2) + "\n")


def _ticks(top: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least `top` (steps of 1, 2 or 5 times a power of ten)."""
    raw = top / count
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    step = next(factor * power for factor in (1, 2, 5, 10) if factor * power >= raw)
    return [step * index for index in range(int(top / step) + 2) if step * (index - 1) < top]


def _svg(
    timelines: dict[str, list[list[float]]], references: dict[str, float], width: int = 720, height: int = 360
) -> str:
    """RSS-over-time lines, one per conversion (each its own colour, dash pattern and point marker, named in a
    legend), and dashed reference levels (MB), on axes with their values, as a dependency-free SVG."""
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
    dashes = ["", "8 4", "2 3", "10 3 2 3", "4 2"]
    t_ticks = _ticks(max(point[0] for line in timelines.values() for point in line) or 1.0)
    m_top = max([point[1] for line in timelines.values() for point in line] + list(references.values())) or 1.0
    m_ticks = _ticks(m_top)
    t_max, m_max = t_ticks[-1], m_ticks[-1]
    left, bottom, top, right = 70, 50, 20, 20

    def x_of(t: float) -> float:
        return left + (width - left - right) * t / t_max

    def y_of(m: float) -> float:
        return height - bottom - (height - bottom - top) * m / m_max

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
        'font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    for t in t_ticks:
        x = x_of(t)
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{height - bottom}" stroke="#ddd"/>')
        parts.append(f'<text x="{x:.1f}" y="{height - bottom + 16}" text-anchor="middle">{t:g}</text>')
    for m in m_ticks:
        y = y_of(m)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{m:g}</text>')
    parts.append(
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="black"/>'
    )
    parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="black"/>')
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - 12}" text-anchor="middle">time (s)</text>')
    parts.append(
        f'<text x="16" y="{height / 2}" transform="rotate(-90 16 {height / 2})" text-anchor="middle">RSS (MB)</text>'
    )
    for label, level in references.items():
        y = y_of(level)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="gray" stroke-dasharray="6 4"/>'
        )
        parts.append(f'<text x="{width - right - 4}" y="{y - 4:.1f}" text-anchor="end" fill="gray">{label}</text>')
    for index, (label, line) in enumerate(timelines.items()):
        color, dash = colors[index % len(colors)], dashes[index % len(dashes)]
        style = f'stroke="{color}" stroke-width="2"' + (f' stroke-dasharray="{dash}"' if dash else "")
        points = " ".join(f"{x_of(t):.1f},{y_of(m):.1f}" for t, m in line)
        parts.append(f'<polyline fill="none" {style} points="{points}"/>')
        step = max(1, len(line) // 8)  # a few markers per line, a different shape per line
        for t, m in line[::step]:
            x, y = x_of(t), y_of(m)
            if index % 2:
                parts.append(f'<rect x="{x - 3:.1f}" y="{y - 3:.1f}" width="6" height="6" fill="{color}"/>')
            else:
                parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>')
        y = top + 10 + 18 * index
        parts.append(f'<line x1="{left + 12}" y1="{y}" x2="{left + 48}" y2="{y}" {style}/>')
        parts.append(f'<text x="{left + 54}" y="{y + 4}" fill="{color}">{label}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _tokenizer_rows(tokenizers: dict[str, Any]) -> list[Row]:
    ratios, upstream = tokenizers["ratios"], tokenizers.get("upstream", {})
    return [
        (
            "fast batch encode vs raw `tokenizers` encode_batch",
            "≥ 0.95×",
            f"{ratios['fast_vs_raw']:.2f}× ({ratios['fast_vs_raw_ids']:.2f}× against raw encode + ids as lists; "
            f"offsets are computed on first use: {ratios['fast_vs_raw_fast']:.2f}× against raw `encode_batch_fast`, "
            f"which skips them too, and {ratios['fast_offsets_read_vs_raw']:.2f}× when every text's offsets are then "
            f"read, {ratios['fast_offsets_mapping_vs_raw']:.2f}× with `return_offsets_mapping=True`)",
        ),
        ("batched infilling vs plain batched encode", "≥ 0.9×", f"{ratios['infilling_vs_plain']:.2f}×"),
        ("slow encode vs raw `sentencepiece`", "≥ 0.7×", f"{ratios['slow_vs_sentencepiece']:.2f}×"),
        (
            "transformers' own Code Llama tokenizer: files matching SentencePiece / infilling prompts matching Meta",
            "(report)",
            f"{upstream.get('upstream_plain_matches')} / {upstream.get('upstream_infill_matches')} "
            f"(ours: {upstream.get('ours_plain_matches')} / {upstream.get('ours_infill_matches')})",
        ),
    ]


def _generation_rows(generation: dict[str, Any]) -> list[Row]:
    ratio = generation["ratio_codellama_over_llama"]
    return [("greedy generate, Code Llama vs stock Llama", "≥ 0.98×", f"{ratio:.3f}×")]


def _pipeline_rows(pipeline: dict[str, Any]) -> list[Row]:
    return [("pipeline infilling overhead vs by hand", "≤ 5%", f"{100 * pipeline['pipeline_overhead']:+.1f}%")]


def _convert_rows(convert: dict[str, Any]) -> list[Row]:
    targets = convert["targets"]
    rows = []
    for name, run in convert.get("runs", {}).items():
        before = run["before"]
        bounded, one_process = before.get("memory_bounded", {}), before.get("one_process")
        rows.append(
            (
                f"converter, {name} shapes ({run['shards']} shards, {run['input_gib']} GiB): peak RSS / time vs "
                "`cp -r`, both synced",
                f"≤ {run['target_peak_rss_mib']} MB / ≤ {targets['convert_over_cp']}×",
                f"{run['peak_rss_mib']} MiB / {run['convert_over_cp']}× (before: {before.get('peak_rss_mib', '-')} "
                f"MiB / {before.get('convert_over_cp', '-')}×; with bounded memory, before the kernel copies: "
                f"{bounded.get('peak_rss_mib', '-')} MiB / {bounded.get('convert_over_cp', '-')}×"
                + (
                    f"; with the kernel copies, in one process: {one_process['peak_rss_mib']} MiB / "
                    f"{one_process['convert_over_cp']}×"
                    if one_process
                    else ""
                )
                + ")",
            )
        )
    rows.append(
        (
            "`codellama-convert --help`",
            f"≤ {targets['help_seconds']} s",
            f"{convert['help_seconds']} s (through `python -m`: {convert.get('help_module_seconds', '-')} s; bare "
            f"import of the converter's in-process path, torch and transformers: {convert['import_seconds']} s)",
        )
    )
    return rows


def _serving_rows(serving: dict[str, Any]) -> list[Row]:
    engine, http = serving["engine"]["ratios"], serving.get("http", {})
    ours = http.get("codellama-serve", {})
    theirs = http.get("transformers serve --continuous-batching")
    load = ours.get("load", {}).get("ratios", {})

    def through_http(value: float | None, unit: str = "×") -> str:
        return f" (through HTTP: {value:.2f}{unit})" if value is not None else ""

    overhead = ours.get("overhead vs generate", {}).get("overhead (target <= 10%)")
    infill = ours.get("infill prefix reuse", {}).get("ratio warm / cold (target <= 0.3)")
    rows = [
        (
            "serving, generated tokens/s: 8 concurrent clients vs one at a time",
            "≥ 3×",
            f"{engine['tokens/s, 8 clients / 1 (target >= 3)']:.2f}×{through_http(load.get('tokens/s, 8 clients / 1'))}",
        ),
        (
            "serving, median time to first token: 8 concurrent clients vs one",
            "≤ 2×",
            f"{engine['time to first token, 8 clients / 1 (target <= 2)']:.2f}×"
            f"{through_http(load.get('time to first token, 8 clients / 1'))}",
        ),
        (
            "serving, one request vs `model.generate` in-process",
            "≤ 10%",
            f"{100 * serving['overhead vs generate']['overhead (target <= 10%)']:+.1f}% (engine)"
            + (f", {100 * overhead:+.1f}% (through HTTP)" if overhead is not None else ""),
        ),
        (
            "serving, time to first token of a ~1,500-token infill after the previous keystroke vs cold",
            "≤ 0.3×",
            f"{serving['prefix reuse']['ratio warm / cold (target <= 0.3)']:.2f}×"
            + (f" (`/infill` after llama.vscode's warm-up: {infill:.2f}×)" if infill is not None else ""),
        ),
    ]
    if isinstance(theirs, dict):
        ours_load, theirs_load = ours["load"]["8 clients"], theirs["load"]["8 clients"]
        rows.append(
            (
                "codellama-serve vs `transformers serve --continuous-batching`, 8 streaming clients, same weights",
                "≥ 1×",
                f"{http['8 clients: codellama-serve / transformers serve (target >= 1)']:.2f}× "
                f"({ours_load['generated tokens/s']:.0f} vs {theirs_load['generated tokens/s']:.0f} tokens/s; median "
                f"time to first token {ours_load['median time to first token ms']:.0f} vs "
                f"{theirs_load['median time to first token ms']:.0f} ms)",
            )
        )
        suffix = theirs["suffix"]
        appended = suffix["answer equals the completion of the prompt alone + the suffix"]
        theirs_meta, ours_meta = suffix["middle equals Meta's"], ours.get("suffix: middle equals Meta's")
        rows.append(
            (
                "`transformers serve` `/v1/completions` with `suffix`",
                "(report)",
                f"the answer equals the completion of the prompt alone + the suffix: {appended}; its middle equals "
                f"Meta's: {theirs_meta} (codellama-serve's: {ours_meta})",
            )
        )
    return rows


# The summary rows each benchmark's data give, one per target.
SUMMARY_ROWS: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "tokenizers": _tokenizer_rows,
    "generation": _generation_rows,
    "pipeline": _pipeline_rows,
    "convert": _convert_rows,
    "serving": _serving_rows,
}
# The summary's order; the last two have rows written by hand only.
ORDER = (*SUMMARY_ROWS, "engine_speed", "serving_ray")


def _summary(data: dict[str, Any], manual: dict[str, Any]) -> list[str]:
    """One row per target, dated and linked to its figures. A hand-written row (manual.json) takes the place of the
    generated row with the same `what`, or follows that benchmark's rows, until the benchmark is measured again."""
    lines = ["| what | target | measured | date measured |", "|---|---|---|---|"]
    for name in ORDER:
        results, group = data.get(name), manual.get(name)
        rows: list[tuple[str, ...]] = []
        if results is not None and name in SUMMARY_ROWS:
            rows = [(*row, f"[{results['date']}](benchmark_data/{name}.json)") for row in SUMMARY_ROWS[name](results)]
        if group is not None and results is not None and results["date"] > group["date"]:
            generated = name in SUMMARY_ROWS
            print(
                f"{MANUAL}: the rows of {name} ({group['date']}) are older than {name}.json "
                f"({results['date']}): " + ("left out" if generated else "shown; update them")
            )
            if generated:
                group = None
        if group is not None:
            hand = {
                row["what"]: (
                    row["what"],
                    row["target"],
                    row["measured"],
                    f"[{row.get('date', group['date'])}]({group['history']})",
                )
                for row in group["rows"]
            }
            rows = [hand.pop(row[0], row) for row in rows] + list(hand.values())
        lines += [f"| {' | '.join(row)} |" for row in rows]
    return lines


def _plots(docs: Path, data: dict[str, Any], manual: dict[str, Any]) -> list[str]:
    lines = []
    for file, name, caption in PLOTS:
        if (docs / file).exists():
            date = (data.get(name) or manual.get(name) or {}).get("date")
            measured = f", measured {date}" if date else ""
            lines += [f"![{caption}]({file})", "", f"{caption} (`benchmarks/bench_{name}.py`{measured}).", ""]
    return lines


def _data(data: dict[str, Any], manual: dict[str, Any]) -> list[str]:
    lines = [
        f"- [{name}.json]({DATA}/{name}.json): `benchmarks/bench_{name}.py`, measured {results['date']} on "
        f"{results.get('machine', 'a machine not recorded')}"
        for name, results in data.items()
    ]
    if manual:
        lines.append(f"- [{MANUAL}]({DATA}/{MANUAL}): the rows written by hand, each group with its date and source:")
        lines += [
            f"    - `benchmarks/bench_{name}.py`, {group['date']}: {group['source']} ([history]({group['history']}))"
            for name, group in manual.items()
            if isinstance(group, dict)
        ]
    return lines


def render(docs: Path, data: dict[str, Any], manual: dict[str, Any]) -> str:
    """The page: the summary, the plots found in `docs` and the list of data files, from the data alone."""
    lines = [
        "# Benchmarks",
        "",
        f"<!-- Generated by `python benchmarks/run_all.py --report` from docs/{DATA}/*.json: edit those, or",
        f"the hand-written {HISTORY}, never this page. -->",
        "",
        "Each benchmark compares its contenders side by side in one run, interleaving repeats and quoting medians,",
        "so the ratios hold even on a noisy machine; absolute times are those of the machine each ran on (see",
        "[Data](#data)). Each row gives the day it was measured, linked to its figures: the run's data file, or the",
        "history of the runs a row written by hand sums up. Runs of particular days, comparisons before and after",
        f"changes and what the figures showed are in the [benchmark history]({HISTORY}).",
        "",
        "## Summary",
        "",
        *_summary(data, manual),
        "",
        "## Plots",
        "",
        *_plots(docs, data, manual),
        "## Data",
        "",
        *_data(data, manual),
        "",
        "`python benchmarks/run_all.py --report` rebuilds this page from these files, after copying over them any",
        "results a run left in `benchmarks/results/`.",
    ]
    return "\n".join(lines) + "\n"


def write_report(docs: Path = DOCS, results_dir: Path = RESULTS_DIR) -> Path:
    """Copy a run's results into `docs`' data, then rebuild the page (and the memory plot, from a run's own data)."""
    data_dir = docs / DATA
    collect_results(data_dir, results_dir)
    files = sorted(path for path in data_dir.glob("*.json") if path.name != MANUAL)
    data = {path.stem: json.loads(path.read_text()) for path in files}
    manual = json.loads((data_dir / MANUAL).read_text()) if (data_dir / MANUAL).exists() else {}
    convert = data.get("convert", {})
    if convert.get("timelines"):  # the data rebuilt from the old page have none: the plot stays as drawn
        sizes = [run.get("input_gib", 0) for run in convert.get("runs", {}).values()]
        references = {f"checkpoint size ({max(sizes):.2f} GiB)": max(sizes) * 1024} if sizes else {}
        (docs / PLOT).write_text(_svg(convert["timelines"], references))
    report = docs / REPORT
    report.write_text(render(docs, data, manual))
    print(f"wrote {report}")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--report", action="store_true", help="only rebuild the page from docs/benchmark_data (and benchmarks/results)"
    )
    parser.add_argument(
        "--docs",
        type=Path,
        default=DOCS,
        help="the docs folder whose benchmarks page to rebuild (default: %(default)s)",
    )
    args = parser.parse_args()
    if not args.report:
        run_benchmarks()
    write_report(args.docs)


if __name__ == "__main__":
    main()
