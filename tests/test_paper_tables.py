"""ShuffleNet V2 Tables 1-4: cell mapping, Kendall tau and the verdict on synthetic results."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

from shufflebench import config
from shufflebench import papers
from shufflebench.report import paper

ROOT = Path(__file__).resolve().parents[1]


def synthetic(table: papers.PaperTable, platform: str, speeds_by_row: list[float], backend: str) -> pd.DataFrame:
    """One ok row per x1 / first-column cell, with the given speed per row."""
    rows = []
    first_column = table.columns[platform][0]
    for (label, column, args, _), speed in zip(
        [c for c in table.cells(platform) if c[1] == first_column], speeds_by_row
    ):
        settings = "batch=1,threads=1" if platform == "cpu" else "batch=8,cudnn_benchmark=true,tf32=false"
        rows.append(
            {
                "workload": table.workload,
                "workload_args": {**args, "hw": 56},
                "backend": backend,
                "cell": f"{table.workload}/{label}/{backend}/{settings}",
                "images_per_s": speed,
                "batches_per_s": speed / (1 if platform == "cpu" else 8),
                "status": "ok",
            }
        )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("table", papers.TABLES, ids=lambda t: f"table{t.number}")
def test_the_papers_ordering_holds_and_its_reverse_does_not(table):
    paper_speeds = [row[0] for row in table.values["cpu"]]
    same = paper.build_tables(synthetic(table, "cpu", paper_speeds, "ort-cpu"))
    (result,) = same
    assert result.verdict == "holds" and result.mean_tau == pytest.approx(1)
    assert result.best_to_worst == pytest.approx(max(paper_speeds) / min(paper_speeds))
    reverse = paper.build_tables(synthetic(table, "cpu", [1 / s for s in paper_speeds], "torch-cpu"))
    assert reverse[0].verdict == "does not hold"


def test_a_table_with_missing_or_failed_cells_is_incomplete_and_gets_no_verdict(recwarn):
    table = papers.TABLES[0]  # four rows
    paper_speeds = [row[0] for row in table.values["cpu"]]
    frame = synthetic(table, "cpu", paper_speeds, "ort-cpu")
    missing = paper.build_tables(frame.iloc[:3])  # an interrupted run: the fourth cell never finished
    nan = frame.assign(images_per_s=[paper_speeds[0], float("nan"), float("nan"), float("nan")])  # no speed recorded
    for (result,) in (missing, paper.build_tables(nan)):
        assert result.verdict.startswith("incomplete (") and result.mean_tau is None
        text = paper.to_markdown(result)
        assert "nan" not in text.lower() and "Kendall" not in text
    assert missing[0].verdict == "incomplete (3 of 4 cells)"
    equal = paper.build_tables(frame.assign(images_per_s=100.0))  # all equally fast: no pair told apart, no warning
    assert equal[0].verdict == "not resolved on this device" and equal[0].mean_tau is None
    assert not [w for w in recwarn if issubclass(w.category, stats.ConstantInputWarning)]


def _with_intervals(frame: pd.DataFrame, spread: float) -> pd.DataFrame:
    """The rows with a latency and a 95% interval of +-spread around it."""
    ms = 1e3 / frame["images_per_s"]
    return frame.assign(median_ms=ms, ci_low_ms=ms * (1 - spread), ci_high_ms=ms * (1 + spread))


def test_a_verdict_counts_only_the_pairs_whose_intervals_are_apart():
    table = papers.TABLES[0]  # G1: 1:1 fastest, then 1:2, 1:6, 1:12 on the paper's ARM
    paper_order = [100.0, 90.0, 80.0, 70.0]  # the paper's ordering, 10-30% apart
    apart = paper.build_tables(_with_intervals(synthetic(table, "cpu", paper_order, "ort-cpu"), 0.02))[0]
    assert apart.verdict == "holds" and apart.mean_tau == 1 and apart.unresolved == []
    reverse = paper.build_tables(_with_intervals(synthetic(table, "cpu", paper_order[::-1], "ort-cpu"), 0.02))[0]
    assert reverse.verdict == "does not hold" and reverse.mean_tau == -1
    noisy = paper.build_tables(_with_intervals(synthetic(table, "cpu", paper_order, "ort-cpu"), 0.25))[0]
    assert noisy.verdict == "not resolved on this device" and noisy.mean_tau is None
    assert len(noisy.unresolved) == noisy.pairs == 6 and "1:1 / 1:2 at x1" in noisy.unresolved
    text = paper.to_markdown(noisy)
    assert "**not resolved on this device**" in text and "Not told apart (intervals overlap): 1:1 / 1:2 at x1" in text
    # 1:1 and 1:2 3% apart overlap at +-2%, the rest are apart and in the paper's order: holds, on 5 of 6 pairs
    some = paper.build_tables(_with_intervals(synthetic(table, "cpu", [100.0, 97.0, 80.0, 70.0], "ort-cpu"), 0.02))[0]
    assert some.verdict == "holds" and some.unresolved == ["1:1 / 1:2 at x1"]
    assert "over the 5 of 6 pairs of rows whose intervals are apart" in paper.to_markdown(some)
    # rows 2% apart at +-3%: only 1:1 / 1:12 told apart, in the paper's order; 1 of 6 pairs is too few for "holds"
    few = paper.build_tables(_with_intervals(synthetic(table, "cpu", [100.0, 98.0, 96.0, 94.0], "ort-cpu"), 0.03))[0]
    assert few.verdict == "not resolved on this device" and len(few.unresolved) == 5 and few.mean_tau == 1
    assert "over the 1 of 6 pairs of rows whose intervals are apart, too few for a verdict" in paper.to_markdown(few)


def test_an_unresolved_verdict_names_the_machines_noise_floor():
    table = papers.TABLES[0]
    frame = _with_intervals(synthetic(table, "cpu", [100.0, 90.0, 80.0, 70.0], "ort-cpu"), 0.25)
    noisy = paper.build_tables(frame.assign(noise_floor=[0.20, 0.24, 0.30, 0.26]))[0]
    assert noisy.verdict == "not resolved on this device (noise floor 25%)" and noisy.noise_floor == 0.25
    assert "intervals overlap; this machine's noise floor is 25%" in paper.to_markdown(noisy)
    older = paper.build_tables(frame.assign(noise_floor=float("nan")))[0]  # rows from before noise floors
    assert older.verdict == "not resolved on this device" and older.noise_floor is None


def test_gpu_cells_are_compared_with_the_gpu_column_in_batches_per_second():
    table = papers.TABLES[0]
    gpu_speeds = [row[0] for row in table.values["gpu"]]
    (result,) = paper.build_tables(synthetic(table, "gpu", [8 * s for s in gpu_speeds], "torch-cuda"))
    assert result.frame[("x1", "measured")].tolist() == gpu_speeds
    assert result.frame[("x1", "paper")].tolist() == gpu_speeds
    assert "batches/s" in paper.to_markdown(result) and "GTX 1080Ti" in paper.to_markdown(result)


def test_markdown_shows_measured_and_paper_values_side_by_side():
    table = papers.TABLES[3]
    (result,) = paper.build_tables(synthetic(table, "cpu", [50.0, 60.0, 55.0, 70.0], "ort-cpu"))
    text = paper.to_markdown(result)
    assert "| ReLU, shortcut | 50.0 | 56.7 |" in text
    assert "Verdict: **holds**" in text


@pytest.mark.parametrize("name", ["g1", "g2", "g3", "g4"])
def test_every_paper_config_cell_has_a_paper_value(name):
    """configs/paper/gN.yaml and the report's tables describe the same cells."""
    table = next(t for t in papers.TABLES if t.workload == name)
    sweep = config.load(ROOT / "configs" / "paper" / f"{name}.yaml")
    for cell in sweep.cells:
        platform = paper.platform_of(cell.backend)
        wanted = [args for _, _, args, _ in table.cells(platform)]
        assert any(all(cell.args[k] == v for k, v in args.items()) for args in wanted), cell.key
    assert len(sweep.cells) == sum(len(table.cells(p)) * 2 for p in ("cpu", "gpu"))


def test_table8_speeds_by_network_and_platform():
    assert papers.table8_speed("shufflenet_v2", {"width": 1.0, "resolution": 224}, "cpu") == 24.4
    assert papers.table8_speed("shufflenet_v2", {"width": 1.0, "resolution": 224}, "gpu") == 341
    assert papers.table8_speed("mobilenet_v2", {"width": 0.4, "resolution": 160}, "cpu") == 33.2
    assert papers.table8_speed("mobilenet_v2", {"width": 0.4, "resolution": 224}, "cpu") is None
    assert papers.table8_speed("resnet50", {"resolution": 224}, "cpu") is None
