"""Run every benchmark in `benchmarks/` and write the report, `docs/benchmarks.md` (plus a memory plot).

    python benchmarks/run_all.py            # all benchmarks, then the report
    python benchmarks/run_all.py --report   # only rebuild the report from benchmarks/results/*.json

Each `bench_*.py` runs in its own process (so one's memory does not weigh on the next) and saves its numbers as
JSON in `benchmarks/results/`; the report is rendered from those files, so every number in it comes from the run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import REPO, RESULTS_DIR, machine  # noqa: E402

REPORT = REPO / "docs" / "benchmarks.md"
PLOT = REPO / "docs" / "convert_memory.svg"
TITLES = {
    "tokenizers": "Tokenizers (issue targets: fast ≥ 0.95× raw tokenizers; infilling ≥ 0.9× plain; slow ≥ 0.7× raw SentencePiece)",
    "generation": "Greedy generation, CodeLlamaForCausalLM vs LlamaForCausalLM (target ≥ 0.98×)",
    "pipeline": "Pipeline infilling vs tokenizer + generate + decode by hand (target: overhead ≤ 5%)",
    "convert": "Converter: peak memory and time vs a plain copy (targets: ≤ 700 MB, ≤ 5× cp -r on the 1.78 GiB checkpoint)",
}


def run_benchmarks() -> None:
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"== {script.name}", flush=True)
        start = time.perf_counter()
        subprocess.run([sys.executable, str(script)], check=True, cwd=REPO)
        print(f"   ({time.perf_counter() - start:.0f} s)", flush=True)


def _rows(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Flatten nested results into (name, value) rows; long series (memory timelines) are left to the plot."""
    if isinstance(value, dict):
        return [row for key, item in value.items() for row in _rows(item, f"{prefix}{key} / ")]
    if isinstance(value, list) and (len(value) > 12 or any(isinstance(item, (list, dict)) for item in value)):
        return []
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    return [(prefix.removesuffix(" / "), text)]


def _svg(timelines: dict[str, list[list[float]]], width: int = 640, height: int = 320) -> str:
    """Peak-RSS-over-time lines, one per checkpoint, as a dependency-free SVG."""
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
    t_max = max(point[0] for line in timelines.values() for point in line) or 1.0
    m_max = max(point[1] for line in timelines.values() for point in line) or 1.0
    left, bottom, top, right = 60, 40, 20, 20

    def xy(t: float, m: float) -> str:
        x = left + (width - left - right) * t / t_max
        y = height - bottom - (height - bottom - top) * m / m_max
        return f"{x:.1f},{y:.1f}"

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">'
    ]
    parts.append(
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="black"/>'
    )
    parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="black"/>')
    parts.append(f'<text x="{width / 2}" y="{height - 8}" text-anchor="middle">seconds (max {t_max:.1f})</text>')
    parts.append(
        f'<text x="14" y="{height / 2}" transform="rotate(-90 14 {height / 2})" text-anchor="middle">RSS MB (max {m_max:.0f})</text>'
    )
    for index, (label, line) in enumerate(timelines.items()):
        color = colors[index % len(colors)]
        points = " ".join(xy(t, m) for t, m in line)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>')
        parts.append(f'<text x="{left + 10}" y="{top + 16 * (index + 1)}" fill="{color}">{label}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def write_report() -> None:
    results = {path.stem: json.loads(path.read_text()) for path in sorted(RESULTS_DIR.glob("*.json"))}
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `python benchmarks/run_all.py` on {datetime.date.today().isoformat()}, on {machine()} (CPU only).",
        "Each benchmark compares its contenders side by side in one run, interleaving repeats and quoting medians,",
        "so the ratios hold even on a noisy machine; absolute times are this machine's.",
        "",
    ]
    for name, data in results.items():
        lines += [f"## {TITLES.get(name, name)}", "", "| measurement | value |", "|---|---|"]
        lines += [f"| {key} | {value} |" for key, value in _rows(data) if key != "machine"]
        lines.append("")
        timelines = data.get("timelines") if isinstance(data, dict) else None
        if timelines:
            PLOT.write_text(_svg(timelines))
            lines += [f"![Converter memory over time]({PLOT.name})", ""]
    REPORT.write_text("\n".join(lines))
    print(f"wrote {REPORT.relative_to(REPO)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report", action="store_true", help="only rebuild the report from saved results")
    args = parser.parse_args()
    if not args.report:
        run_benchmarks()
    write_report()


if __name__ == "__main__":
    main()
