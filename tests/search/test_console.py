"""search.console: the trial lines, the progress line (terminal and plain), and
Ray's output moved to ray.log. Synthetic trials, no Ray run."""
from __future__ import annotations

import io
import logging
import pickle
import sys
from types import SimpleNamespace

import pytest

from search import console as console_mod
from search.console import ConsoleCallback, duration, ray_output_to


def trial(tid, **config):
    return SimpleNamespace(trial_id=tid, config=config, last_result={}, path=f"/runs/x/train_trial_{tid}")


def result(epoch, psnr, **kw):
    return {"epoch": epoch, "training_iteration": epoch, "val_psnr": psnr, **kw}


def make(stream, live=False, **kw):
    args = dict(metric="val_psnr", mode="max", num_epoch=6, num_search=4, max_reeval=2,
                param_names=("kl_anneal_type", "lr", "optimizer"), stream=stream, live=live)
    return ConsoleCallback(**{**args, **kw})


def run_trial(cb, t, values, error=False):
    cb.on_trial_start(0, [], t)
    for e, v in enumerate(values, 1):
        t.last_result = result(e, v)
        cb.on_trial_result(0, [], t, t.last_result)
    (cb.on_trial_error if error else cb.on_trial_complete)(0, [], t)


def test_duration():
    assert [duration(s) for s in (0, 12.4, 65, 3600 + 120)] == ["0s", "12s", "1m05s", "1h02m"]


def test_trial_lines_name_the_stratum_or_the_parameters_and_how_it_ended():
    out = io.StringIO()
    cb = make(out)
    run_trial(cb, trial("aaaa0001", stratum="Monotonic", phase="search", lr=1e-3), [30.0, 31.5, 33, 34, 35, 36.25])
    run_trial(cb, trial("aaaa0002", stratum="all", kl_anneal_type="None", lr=0.00123, optimizer="Adam"), [20, 21])
    run_trial(cb, trial("aaaa0003", stratum="None", phase="reeval", seed=1001), [33.0], error=True)
    lines = out.getvalue().splitlines()
    assert lines[0] == "start  aaaa0001  Monotonic"
    assert lines[1] == "end    aaaa0001  Monotonic  completed 6/6 epochs  val_psnr 36.25"
    assert lines[3] == "start  aaaa0002  kl_anneal_type=None lr=0.00123 optimizer=Adam"
    assert lines[4] == "end    aaaa0002  kl_anneal_type=None lr=0.00123 optimizer=Adam  stopped at epoch 2/6  val_psnr 21.00"
    assert lines[5] == "start  aaaa0003  None  re-run, seed 1001"
    assert lines[6] == "end    aaaa0003  None  re-run, seed 1001  failed (see /runs/x/train_trial_aaaa0003/error.txt)"


def test_progress_line_counts_trials_epochs_best_and_time_left(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(console_mod.time, "time", lambda: clock[0])
    out = io.StringIO()
    cb = make(out)
    a, b = trial("a", stratum="Cyclical"), trial("b", stratum="None")
    cb.on_trial_start(0, [], a)
    cb.on_trial_start(0, [], b)
    for e in (1, 2):
        clock[0] += 10
        a.last_result = result(e, 30.0 + e)
        cb.on_trial_result(0, [], a, a.last_result)
        b.last_result = result(e, 28.0 + e)
        cb.on_trial_result(0, [], b, b.last_result)
    cb.on_trial_complete(0, [], b)  # stopped at epoch 2
    # 4 epochs in 20 s = 0.2 epochs/s; left: a 4 more, 2 search trials + 2 re-runs at 2 epochs each (mean of ended)
    assert cb.progress() == ("progress: 1/6 trials done, 1 running (incl. up to 2 re-runs) | 4/36 epochs | "
                             "best val_psnr 32.00 (a) | 20s, ~1m00s left")
    # mode min: lower is better
    low = make(io.StringIO(), mode="min", metric="train_loss")
    c = trial("c")
    low.on_trial_start(0, [], c)
    for v in (3.0, 1.0, 2.0):
        low.on_trial_result(0, [], c, {"epoch": 1, "train_loss": v})
    assert low.best == (1.0, "c")


def test_plain_output_prints_progress_at_most_every_30_s_and_at_the_end(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(console_mod.time, "time", lambda: clock[0])
    out = io.StringIO()
    cb = make(out, live=None)  # a StringIO is not a terminal
    assert cb.live is False
    for i in range(4):
        clock[0] += 10
        run_trial(cb, trial(f"t{i}"), [30.0 + i])
        cb.on_step_end(0, [])
    cb.on_experiment_end([])
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text
    progress = [line for line in text.splitlines() if line.startswith("progress: ")]
    assert len(progress) == 3  # at 10 s, at 40 s, and the final one
    assert progress[-1].startswith("progress: 4/6 trials done, 0 running")


def test_terminal_output_redraws_one_line_in_place():
    out = io.StringIO()
    cb = make(out, live=True)
    run_trial(cb, trial("a"), [30.0])
    cb.on_experiment_end([])
    text = out.getvalue()
    assert text.startswith("start  a")
    assert "\r\x1b[Kend    a" in text  # the progress line is wiped before a trial line
    assert text.endswith("\n") and text.count("\r\x1b[Kprogress: ") >= 2


def test_the_callback_pickles_without_its_stream():
    cb = make(io.StringIO())
    run_trial(cb, trial("a"), [30.0])
    clone = pickle.loads(pickle.dumps(cb))
    assert clone._stream is None and clone.best == (30.0, "a")


def test_ray_output_to_moves_prints_and_log_handlers_and_restores_them(tmp_path):
    logger = logging.getLogger("ray.test_console")
    handler = logging.StreamHandler(sys.stderr)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    real_out, real_err = sys.stdout, sys.stderr
    try:
        with ray_output_to(tmp_path / "ray.log") as console:
            assert console is real_out
            print("a Tune table")
            print("a worker's stderr", file=sys.stderr)
            logger.info("Started a local Ray instance")
            late = logging.StreamHandler()  # made while redirected (Optuna makes its handler lazily)
            logging.getLogger("optuna.test_console").addHandler(late)
        assert (sys.stdout, sys.stderr) == (real_out, real_err)
        assert handler.stream is real_err and late.stream is real_err
        log = (tmp_path / "ray.log").read_text()
        assert "a Tune table" in log and "a worker's stderr" in log and "Started a local Ray instance" in log
    finally:
        logger.removeHandler(handler)
    with ray_output_to(None) as console:  # --verbose
        assert console is sys.stdout
    assert not (tmp_path / "none").exists()


def test_run_search_has_a_verbose_flag(capsys):
    import run_search

    with pytest.raises(SystemExit):
        run_search.parse_args(["--help"])
    assert "--verbose" in capsys.readouterr().out
