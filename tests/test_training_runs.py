"""The training loop and the main job: resume after interrupt, divergence guard, outputs."""

from __future__ import annotations

import json
import math

import pytest
import torch

from algorithms.data import load_dataset
from algorithms.spec import PCSpec
from algorithms.training import Diverged, fit
from algorithms.variants import Variant, build_model
from demos._runs import CSV_COLUMNS, RunResult, read_curves, train_run

SMALL = PCSpec(sizes=(64, 20, 10), inference_steps=10)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _curve(res: RunResult):
    return [(r.epoch, r.train_accuracy, r.test_accuracy, r.energy) for r in res.records]


@pytest.mark.parametrize("variant", [Variant.PC, Variant.LEARNED_BACKWARD, Variant.BACKPROP])
def test_resume_after_interrupt_reproduces_the_curve(tmp_path, digits, variant):
    base = SMALL.replace(hidden_init=SMALL.hidden_init)
    full = train_run(RunResult("digits", "relu", variant, 0), base, digits, 3, tmp_path / "a",
                     split="thesis", progress=False)

    class Interrupt(Exception):
        pass

    def stop_after_two(res: RunResult) -> None:
        if len(res.records) == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        train_run(RunResult("digits", "relu", variant, 0), base, digits, 3, tmp_path / "b",
                  split="thesis", progress=False, on_epoch_end=stop_after_two)
    resumed = train_run(RunResult("digits", "relu", variant, 0), base, digits, 3,
                        tmp_path / "b", split="thesis", progress=False)
    assert resumed.status == "finished" and full.status == "finished"
    assert _curve(resumed) == _curve(full)


def test_resume_with_random_hidden_init_restores_the_generator(tmp_path, digits):
    from algorithms.spec import HiddenInit

    base = SMALL.replace(hidden_init=HiddenInit.RANDOM)
    full = train_run(RunResult("digits", "relu", Variant.PC, 0), base, digits, 2, tmp_path / "a",
                     split="thesis", progress=False)
    train_run(RunResult("digits", "relu", Variant.PC, 0), base, digits, 1, tmp_path / "b",
              split="thesis", progress=False)
    resumed = train_run(RunResult("digits", "relu", Variant.PC, 0), base, digits, 2,
                        tmp_path / "b", split="thesis", progress=False)
    assert _curve(resumed) == _curve(full)


def test_changed_config_is_not_resumed(tmp_path, digits):
    from demos._runs import ConfigMismatch

    train_run(RunResult("digits", "relu", Variant.PC, 0), SMALL, digits, 1, tmp_path,
              split="thesis", progress=False)
    with pytest.raises(ConfigMismatch, match="different configuration"):
        train_run(RunResult("digits", "relu", Variant.PC, 0), SMALL.replace(learning_rate=0.5),
                  digits, 2, tmp_path, split="thesis", progress=False)


def test_divergence_is_caught_and_recorded_without_nan(tmp_path, digits):
    hot = SMALL.replace(learning_rate=5.0)
    with pytest.raises(Diverged, match="diverged at epoch 1"):
        fit(build_model(Variant.PC, hot), digits, 2, progress=False)
    res = train_run(RunResult("digits", "relu", Variant.PC, 0), hot, digits, 2, tmp_path,
                    split="thesis", progress=False)
    assert res.status == "diverged" and "diverged at epoch" in res.message
    assert all(math.isfinite(r.energy) for r in res.records)


def test_fit_rejects_mismatched_sizes(digits):
    with pytest.raises(ValueError, match="64 features and 10 classes"):
        fit(build_model(Variant.PC, PCSpec(sizes=(784, 10))), digits, 1, progress=False)


def test_main_job_writes_its_outputs(tmp_path, capsys):
    from demos.relaxations import main

    out = tmp_path / "run"
    rc = main(["--epochs", "2", "--hidden", "16", "--inference-steps", "5", "--variants", "pc",
               "backprop", "--seeds", "2", "--out", str(out), "--no-progress"])
    assert rc == 0
    rows = read_curves(out / "curves.csv")
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 2 * 2 * 2
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["variants"]) == {"pc", "backprop"}
    assert summary["command"].startswith("python -m demos.relaxations")
    assert summary["device"] == ("cuda" if torch.cuda.is_available() else "cpu")  # --device auto
    assert (out / "curves.png").stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert "standard PC" in printed and "backprop" in printed
    # a second invocation resumes: nothing is retrained, same curves
    assert main(["--epochs", "2", "--hidden", "16", "--inference-steps", "5", "--variants",
                 "pc", "backprop", "--seeds", "2", "--out", str(out), "--no-progress"]) == 0
    assert read_curves(out / "curves.csv") == rows


def test_main_job_reports_bad_options(tmp_path, capsys, monkeypatch):
    from demos.relaxations import main

    monkeypatch.delenv("PREDICTIVE_CIRCUITS_DATA", raising=False)
    assert main(["--inference-rate", "3", "--out", str(tmp_path)]) == 2
    assert "inference_rate" in capsys.readouterr().err
    assert main(["--dataset", "mnist", "--no-download", "--data-dir", str(tmp_path),
                 "--out", str(tmp_path)]) == 1
    assert "missing" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["--device", "cuda", "--out", str(tmp_path)]) == 2
        assert "CUDA was asked for" in capsys.readouterr().err


def test_fewer_epochs_than_checkpointed_reports_a_prefix(tmp_path, digits):
    full = train_run(RunResult("digits", "relu", Variant.BACKPROP, 0), SMALL, digits, 3,
                     tmp_path, split="thesis", progress=False)
    short = train_run(RunResult("digits", "relu", Variant.BACKPROP, 0), SMALL, digits, 2,
                      tmp_path, split="thesis", progress=False)
    assert _curve(short) == _curve(full)[:2] and short.status == "finished"
    again = train_run(RunResult("digits", "relu", Variant.BACKPROP, 0), SMALL, digits, 3,
                      tmp_path, split="thesis", progress=False)
    assert _curve(again) == _curve(full)


def test_main_job_runs_each_variant_in_its_prediction_mode(tmp_path, capsys):
    """``--predictions auto`` (default): learned error connections with fixed predictions
    (the authors' runs), the others recomputed; the mode is in the label, summary.json and
    the checkpoint's spec."""
    import torch

    from demos.relaxations import fixed_predictions, main

    assert fixed_predictions("auto", Variant.LEARNED_ERROR)
    assert fixed_predictions("auto", Variant.FULLY_RELAXED)
    assert not fixed_predictions("auto", Variant.PC)
    assert not fixed_predictions("auto", Variant.PSI_ON_VALUE)
    assert fixed_predictions("fixed", Variant.PC) and not fixed_predictions("recomputed",
                                                                           Variant.FULLY_RELAXED)
    out = tmp_path / "run"
    # psi's rule (the authors') is not a descent direction: it needs relaxed errors, so
    # enough inference steps for the constant shift (1 - psi) mu_hat to be relaxed away
    rc = main(["--epochs", "1", "--hidden", "16", "--inference-steps", "60", "--variants", "pc",
               "learned-error", "backprop", "--out", str(out), "--no-progress", "--no-plot"])
    assert rc == 0
    variants = json.loads((out / "summary.json").read_text())["variants"]
    assert variants["pc"]["predictions"] == "recomputed"
    assert variants["learned-error"]["predictions"] == "fixed"
    assert "predictions" not in variants["backprop"]
    assert variants["learned-error"]["label"] == "learned error connections [fixed pred.]"
    assert "learned error connections [fixed pred.]" in capsys.readouterr().out
    for key, fixed in (("pc", False), ("learned-error", True)):
        state = torch.load(out / "runs" / f"digits_relu_{key}_seed0" / "checkpoint.pt",
                           weights_only=True)
        assert state["config"]["spec"]["fixed_predictions"] is fixed
    assert main(["--fixed-predictions", "--predictions", "recomputed",
                 "--out", str(out)]) == 2
    assert "contradicts" in capsys.readouterr().err


def test_output_precision_report_tables_the_gap_to_backprop(tmp_path):
    from demos.output_precision_report import main

    for pi, pc_acc in (("1", (0.90, 0.92)), ("0.1", (0.95, 0.97))):
        folder = tmp_path / f"mnist-relu-pi{pi}"
        folder.mkdir()
        lines = [",".join(CSV_COLUMNS)]
        for seed in (0, 1):
            for variant, acc in (("backprop", 0.96), ("pc", pc_acc[seed])):
                lines.append(f"mnist,relu,{variant},{seed},1,0,{acc},0,0")
        (folder / "curves.csv").write_text("\n".join(lines) + "\n")
    assert main(["--root", str(tmp_path), "--out", str(tmp_path)]) == 0
    table = (tmp_path / "output_precision.md").read_text()
    assert "| 1 | 2 | 91.00 ± 1.00 | 96.00 ± 0.00 | -5.00 |" in table
    assert "| 0.1 | 2 | 96.00 ± 1.00 | 96.00 ± 0.00 | +0.00 |" in table
    assert (tmp_path / "output_precision.png").stat().st_size > 10_000
