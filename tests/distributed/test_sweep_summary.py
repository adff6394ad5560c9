"""The sweep summary table and plot, written from job directories laid out as a sweep writes them."""

from __future__ import annotations

import csv
import json

from gptpipe.runtime.sweep import swept_names, write_sweep_summary


def make_job(sweep_dir, number: int, lr: str, summary: dict | None):
    job = sweep_dir / str(number)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(f"- script=s.txt\n- DROP_CONFIG=drop1ch1lr{lr}\n")
    if summary is not None:
        (job / "summary.json").write_text(json.dumps(summary))
        (job / "metrics.csv").write_text(
            "iteration,elapsed_s,kind,train_loss,test_loss,test_accuracy,learning_rate,tokens_per_s\n"
            "0,0.1,evaluation,5.5,5.5,,0.01,\n"
            "1,0.2,iteration,5.4,,,0.01,\n"
            f"2,0.3,evaluation,5.0,{summary['final_test_loss']},,0.01,100\n"
        )


def summary(test_loss: float) -> dict:
    return {"status": "completed", "stopped_by": "MAX_ITERS", "iteration": 2, "final_train_loss": 5.0,
            "final_test_loss": test_loss, "tokens_per_s": 100.0, "wall_time_s": 1.5}


def test_sweep_summary_files(tmp_path):
    make_job(tmp_path, 0, "0.01", summary(4.5))
    make_job(tmp_path, 1, "0.02", summary(4.25))
    written = write_sweep_summary(tmp_path)
    assert [path.name for path in written] == ["sweep_summary.csv", "sweep_summary.md", "sweep_test_loss.png"]


def test_sweep_summary_rows(tmp_path):
    make_job(tmp_path, 0, "0.01", summary(4.5))
    make_job(tmp_path, 1, "0.02", summary(4.25))
    write_sweep_summary(tmp_path)
    with open(tmp_path / "sweep_summary.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [(row["job"], row["DROP_CONFIG"], row["final_test_loss"]) for row in rows] == [
        ("0", "drop1ch1lr0.01", "4.5"), ("1", "drop1ch1lr0.02", "4.25")]


def test_sweep_summary_markdown(tmp_path):
    make_job(tmp_path, 0, "0.01", summary(4.5))
    write_sweep_summary(tmp_path)
    lines = (tmp_path / "sweep_summary.md").read_text().splitlines()
    assert lines[0] == ("| job | script | DROP_CONFIG | status | stopped_by | iteration | final_train_loss "
                        "| final_test_loss | tokens_per_s | wall_time_s |")
    assert lines[2] == "| 0 | s.txt | drop1ch1lr0.01 | completed | MAX_ITERS | 2 | 5.0000 | 4.5000 | 100 | 1.5 |"


def test_sweep_summary_failed_job(tmp_path):
    make_job(tmp_path, 0, "0.01", None)
    write_sweep_summary(tmp_path)
    with open(tmp_path / "sweep_summary.csv", newline="") as file:
        row = next(csv.DictReader(file))
    assert row["status"].startswith("no summary.json")
    assert not (tmp_path / "sweep_test_loss.png").exists()


def test_plot_labels_name_swept_values_only():
    rows = [{"script": "a.txt", "MAX_ITERS": "4", "drop.lr": "0.01"},
            {"script": "a.txt", "MAX_ITERS": "4", "drop.lr": "0.02"}]
    assert swept_names(rows, ["script", "MAX_ITERS", "drop.lr"]) == ["drop.lr"]


def test_sweep_summary_failed_job_error(tmp_path):
    make_job(tmp_path, 0, "0.01", None)
    (tmp_path / "0" / "error.txt").write_text("data.txt not found\n  hint: check the path\n")
    write_sweep_summary(tmp_path)
    with open(tmp_path / "sweep_summary.csv", newline="") as file:
        row = next(csv.DictReader(file))
    assert row["status"] == "failed: data.txt not found"


def test_sweep_summary_jobs_not_run(tmp_path):
    make_job(tmp_path, 0, "0.01", summary(4.5))
    planned = [["script=s.txt", "DROP_CONFIG=drop1ch1lr0.01"], ["script=s.txt", "DROP_CONFIG=drop1ch1lr0.02"]]
    write_sweep_summary(tmp_path, planned)
    with open(tmp_path / "sweep_summary.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [(row["job"], row["DROP_CONFIG"]) for row in rows] == [("0", "drop1ch1lr0.01"), ("1", "drop1ch1lr0.02")]
    assert rows[0]["status"] == "completed"
    assert rows[1]["status"] == "not run: the sweep was stopped before it"
