"""The benchmarks page is rendered from its data alone: `benchmarks/run_all.py --report` makes the committed page of
the committed docs/benchmark_data, the same bytes every time, takes a run's newer results in (dated), and never
touches the hand-written history page. Runs on a copy of the docs, with the script itself, in a few tenths of a second.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from real_data import REPO

DOCS = REPO / "docs"
RUN_ALL = REPO / "benchmarks" / "run_all.py"
# What the page is built from, besides the data, and what the report must leave as it is.
UNTOUCHED = ("benchmarks_history.md", "convert_memory.svg", "serving_speed.svg")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """A copy of the docs the page is built from: its data, its plots and the history beside it."""
    copy = tmp_path / "docs"
    shutil.copytree(DOCS / "benchmark_data", copy / "benchmark_data")
    for name in UNTOUCHED:
        shutil.copy2(DOCS / name, copy / name)
    return copy


def report(docs: Path, results: Path) -> str:
    """Run `run_all.py --report` on `docs`, with `results` as the run's results folder; the page it wrote."""
    environment = {**os.environ, "BENCH_RESULTS_DIR": str(results)}
    command = [sys.executable, str(RUN_ALL), "--report", "--docs", str(docs)]
    subprocess.run(command, env=environment, check=True, capture_output=True, text=True, timeout=60)
    return (docs / "benchmarks.md").read_text()


def snapshot(docs: Path) -> dict[str, bytes]:
    return {name: (docs / name).read_bytes() for name in UNTOUCHED}


def data_file(docs: Path, name: str) -> dict:
    return json.loads((docs / "benchmark_data" / f"{name}.json").read_text())


def test_the_committed_data_render_the_committed_page_byte_for_byte_twice(docs: Path, tmp_path: Path):
    before = snapshot(docs)
    first = report(docs, tmp_path / "no run")
    assert first == (DOCS / "benchmarks.md").read_text()
    assert report(docs, tmp_path / "no run") == first
    assert snapshot(docs) == before


def test_every_summary_row_is_dated_and_links_to_its_figures():
    page = (DOCS / "benchmarks.md").read_text()
    summary = page.split("## Summary\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert summary[0] == "| what | target | measured | date measured |"
    rows = summary[2:]
    assert len(rows) >= 19  # the 19 targets of the page before it was split
    for row in rows:
        date = re.fullmatch(r"\| .+ \| .+ \| .+ \| \[(.+)\]\(([^)#]+)(#[^)]*)?\) \|", row)
        assert date, row
        assert DATE.match(date[1]), row
        assert (DOCS / date[2]).is_file(), row


def test_a_newer_run_replaces_its_data_and_an_older_one_does_not(docs: Path, tmp_path: Path):
    results = tmp_path / "results"
    results.mkdir()
    fresh = {**data_file(docs, "generation"), "date": "2027-01-02", "ratio_codellama_over_llama": 1.0123}
    (results / "generation.json").write_text(json.dumps(fresh))
    stale = {**data_file(docs, "pipeline"), "date": "2026-01-01", "pipeline_overhead": 0.5}
    (results / "pipeline.json").write_text(json.dumps(stale))
    before = snapshot(docs)
    page = report(docs, results)
    assert data_file(docs, "generation") == fresh
    assert (
        "| greedy generate, Code Llama vs stock Llama | ≥ 0.98× | 1.012× | [2027-01-02](benchmark_data/generation.json) |"
        in page
    )
    assert data_file(docs, "pipeline")["date"] == "2026-11-26"
    assert (
        "| pipeline infilling overhead vs by hand | ≤ 5% | -2.2% | [2026-11-26](benchmark_data/pipeline.json) |" in page
    )
    assert snapshot(docs) == before


def test_a_newer_run_takes_the_place_of_the_rows_written_by_hand(docs: Path, tmp_path: Path):
    results = tmp_path / "results"
    results.mkdir()
    serving = {**data_file(docs, "serving"), "date": "2027-01-02"}
    (results / "serving.json").write_text(json.dumps(serving))
    page = report(docs, results)
    assert "medians of 6 runs" not in page  # the hand-written medians of 2026-11-29's runs
    assert (
        "| serving, generated tokens/s: 8 concurrent clients vs one at a time | ≥ 3× | 4.14× (through HTTP: 3.52×) | "
        "[2027-01-02](benchmark_data/serving.json) |"
    ) in page
    # The benchmarks with no generated rows keep theirs, dated as written.
    assert "| codellama-serve vs the bare decode loop at 32 clients | ≥ 0.8× |" in page
    assert "[2026-12-06](benchmarks_history.md#ray-serve" in page


def test_the_data_files_are_dated_and_keep_numbers_as_numbers():
    number = re.compile(r"[-+]?\d+(\.\d+)?")

    def strings(value: object) -> list[str]:
        if isinstance(value, dict):
            return [text for item in value.values() for text in strings(item)]
        if isinstance(value, list):
            return [text for item in value for text in strings(item)]
        return [value] if isinstance(value, str) else []

    files = sorted((DOCS / "benchmark_data").glob("*.json"))
    assert {path.stem for path in files} >= {"convert", "generation", "manual", "pipeline", "serving", "tokenizers"}
    for path in files:
        data = json.loads(path.read_text())
        groups = [group for group in data.values() if isinstance(group, dict)] if path.stem == "manual" else [data]
        for group in groups:
            assert DATE.fullmatch(group["date"]), path
        assert not [text for text in strings(data) if number.fullmatch(text)], path
