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
import math
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
    "tokenizers": "Tokenizers (targets: fast ≥ 0.95× raw tokenizers; infilling ≥ 0.9× plain; slow ≥ 0.7× raw SentencePiece)",
    "generation": "Greedy generation, CodeLlamaForCausalLM vs LlamaForCausalLM (target ≥ 0.98×)",
    "pipeline": "Pipeline infilling vs tokenizer + generate + decode by hand (target: overhead ≤ 5%)",
    "convert": "Converter at 7B and 70B layer shapes: peak memory, time vs a plain copy, start-up",
    "serving": "Serving: the engine and codellama-serve under load, prefix reuse, and transformers serve side by side",
    "engine_speed": "Serving speed: the bare decode loop, codellama-serve and transformers serve at 1, 8 and 32 clients; "
    "prompt-lookup speculation off and on",
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


def _tokenizer_rows(tokenizers: dict[str, Any]) -> list[str]:
    ratios, upstream = tokenizers["ratios"], tokenizers.get("upstream", {})
    return [
        f"| fast batch encode vs raw `tokenizers` encode_batch | ≥ 0.95× | {ratios['fast_vs_raw']:.2f}× "
        f"({ratios['fast_vs_raw_ids']:.2f}× against raw encode + ids as lists; offsets are computed on first use: "
        f"{ratios['fast_vs_raw_fast']:.2f}× against raw `encode_batch_fast`, which skips them too, and "
        f"{ratios['fast_offsets_read_vs_raw']:.2f}× when every text's offsets are then read, "
        f"{ratios['fast_offsets_mapping_vs_raw']:.2f}× with `return_offsets_mapping=True`) |",
        f"| batched infilling vs plain batched encode | ≥ 0.9× | {ratios['infilling_vs_plain']:.2f}× |",
        f"| slow encode vs raw `sentencepiece` | ≥ 0.7× | {ratios['slow_vs_sentencepiece']:.2f}× |",
        "| transformers' own Code Llama tokenizer: files matching SentencePiece / infilling prompts matching Meta | "
        f"(report) | {upstream.get('upstream_plain_matches')} / {upstream.get('upstream_infill_matches')} "
        f"(ours: {upstream.get('ours_plain_matches')} / {upstream.get('ours_infill_matches')}) |",
    ]


def _generation_rows(generation: dict[str, Any]) -> list[str]:
    return [
        f"| greedy generate, Code Llama vs stock Llama | ≥ 0.98× | {generation['ratio_codellama_over_llama']:.3f}× |"
    ]


def _pipeline_rows(pipeline: dict[str, Any]) -> list[str]:
    return [f"| pipeline infilling overhead vs by hand | ≤ 5% | {100 * pipeline['pipeline_overhead']:+.1f}% |"]


def _convert_rows(convert: dict[str, Any]) -> list[str]:
    targets = convert["targets"]
    rows = []
    for name, run in convert.get("runs", {}).items():
        before = run["before"]
        bounded, one_process = before.get("memory_bounded", {}), before.get("one_process")
        rows.append(
            f"| converter, {name} shapes ({run['shards']} shards, {run['input_gib']} GiB): peak RSS / time vs "
            f"`cp -r`, both synced | ≤ {run['target_peak_rss_mib']} MB / ≤ {targets['convert_over_cp']}× | "
            f"{run['peak_rss_mib']} MiB / {run['convert_over_cp']}× (before: {before.get('peak_rss_mib', '-')} MiB / "
            f"{before.get('convert_over_cp', '-')}×; with bounded memory, before the kernel copies: "
            f"{bounded.get('peak_rss_mib', '-')} MiB / {bounded.get('convert_over_cp', '-')}×"
            + (
                f"; with the kernel copies, in one process: {one_process['peak_rss_mib']} MiB / "
                f"{one_process['convert_over_cp']}×"
                if one_process
                else ""
            )
            + ") |"
        )
    rows.append(
        f"| `codellama-convert --help` | ≤ {targets['help_seconds']} s | {convert['help_seconds']} s "
        f"(through `python -m`: {convert.get('help_module_seconds', '-')} s; bare import of the converter's in-process "
        f"path, torch and transformers: {convert['import_seconds']} s) |"
    )
    return rows


def _serving_rows(serving: dict[str, Any]) -> list[str]:
    engine, http = serving["engine"]["ratios"], serving.get("http", {})
    ours = http.get("codellama-serve", {})
    theirs = http.get("transformers serve --continuous-batching")
    load = ours.get("load", {}).get("ratios", {})

    def through_http(value: float | None, unit: str = "×") -> str:
        return f" (through HTTP: {value:.2f}{unit})" if value is not None else ""

    overhead = ours.get("overhead vs generate", {}).get("overhead (target <= 10%)")
    infill = ours.get("infill prefix reuse", {}).get("ratio warm / cold (target <= 0.3)")
    rows = [
        f"| serving, generated tokens/s: 8 concurrent clients vs one at a time | ≥ 3× | "
        f"{engine['tokens/s, 8 clients / 1 (target >= 3)']:.2f}×{through_http(load.get('tokens/s, 8 clients / 1'))} |",
        f"| serving, median time to first token: 8 concurrent clients vs one | ≤ 2× | "
        f"{engine['time to first token, 8 clients / 1 (target <= 2)']:.2f}×"
        f"{through_http(load.get('time to first token, 8 clients / 1'))} |",
        f"| serving, one request vs `model.generate` in-process | ≤ 10% | "
        f"{100 * serving['overhead vs generate']['overhead (target <= 10%)']:+.1f}% (engine)"
        + (f", {100 * overhead:+.1f}% (through HTTP)" if overhead is not None else "")
        + " |",
        f"| serving, time to first token of a ~1,500-token infill after the previous keystroke vs cold | ≤ 0.3× | "
        f"{serving['prefix reuse']['ratio warm / cold (target <= 0.3)']:.2f}×"
        + (f" (`/infill` after llama.vscode's warm-up: {infill:.2f}×)" if infill is not None else "")
        + " |",
    ]
    if isinstance(theirs, dict):
        ours_load, theirs_load = ours["load"]["8 clients"], theirs["load"]["8 clients"]
        rows.append(
            "| codellama-serve vs `transformers serve --continuous-batching`, 8 streaming clients, same weights | "
            f"≥ 1× | {http['8 clients: codellama-serve / transformers serve (target >= 1)']:.2f}× "
            f"({ours_load['generated tokens/s']:.0f} vs {theirs_load['generated tokens/s']:.0f} tokens/s; median time "
            f"to first token {ours_load['median time to first token ms']:.0f} vs "
            f"{theirs_load['median time to first token ms']:.0f} ms) |"
        )
        suffix = theirs["suffix"]
        appended = suffix["answer equals the completion of the prompt alone + the suffix"]
        theirs_meta, ours_meta = suffix["middle equals Meta's"], ours.get("suffix: middle equals Meta's")
        rows.append(
            "| `transformers serve` `/v1/completions` with `suffix` | (report) | the answer equals the completion of "
            f"the prompt alone + the suffix: {appended}; its middle equals Meta's: {theirs_meta} "
            f"(codellama-serve's: {ours_meta}) |"
        )
    return rows


# The summary rows each benchmark's saved results give, one per target (a benchmark not run is skipped).
SUMMARY_ROWS = {
    "tokenizers": _tokenizer_rows,
    "generation": _generation_rows,
    "pipeline": _pipeline_rows,
    "convert": _convert_rows,
    "serving": _serving_rows,
}


def _summary(results: dict[str, Any]) -> list[str]:
    return [row for name, rows in SUMMARY_ROWS.items() if name in results for row in rows(results[name])]


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
    lines += ["## Summary", "", "| what | target | measured |", "|---|---|---|", *_summary(results), ""]
    for name, data in results.items():
        lines += [f"## {TITLES.get(name, name)}", "", "| measurement | value |", "|---|---|"]
        labels = data.pop("labels", {}) if isinstance(data, dict) else {}
        rows = [(" / ".join(labels.get(part, part) for part in key.split(" / ")), value) for key, value in _rows(data)]
        lines += [f"| {key} | {value} |" for key, value in rows if key != "machine"]
        lines.append("")
        timelines = data.get("timelines") if isinstance(data, dict) else None
        if timelines:
            sizes = [run.get("input_gib", 0) for run in data.get("runs", {}).values()]
            references = {f"checkpoint size ({max(sizes):.2f} GiB)": max(sizes) * 1024} if sizes else {}
            PLOT.write_text(_svg(timelines, references))
            lines += [f"![Converter memory over time]({PLOT.name})", ""]
        if name == "engine_speed" and (REPO / "docs" / "serving_speed.svg").exists():
            lines += ["![tokens/s and time to first token against clients](serving_speed.svg)", ""]
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
