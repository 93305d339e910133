"""Sections -> one self-contained HTML page that works offline.

plotly.js is inlined once in <head>; each figure is a div plus a small script
(`fig.to_html(full_html=False, include_plotlyjs=False)`); images are data: URIs.
Every string from a config, CSV or folder name is escaped (draw.esc) before it
lands in the page.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Iterable, NamedTuple

import pandas as pd
import plotly.graph_objects as go
import plotly.offline

from reports.collect import (Comparison, StratumResult, StrategyResult, Summary, Verdict, collect_axes, collect_comparison, collect_summary, collect_verdict,
                             still_improving)
from reports.draw import esc
from reports.figures import Section, build_sections, table, warning
from reports.load import Experiment, ExperimentSet, load_experiments

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 0;
       background: #fafafa; line-height: 1.5; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 28px 60px; background: #fff; }
h1 { font-size: 1.7em; margin: 0.2em 0 0.1em; }
h2 { font-size: 1.3em; margin-top: 2.2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
h3 { font-size: 1.05em; margin: 1.4em 0 0.3em; }
.sub { color: #666; margin-top: 0; }
.caption { color: #555; margin: 0.2em 0 0.6em; font-size: 0.95em; }
.verdict { background: #f3f7fb; border-left: 4px solid #1f77b4; padding: 10px 16px; margin: 1em 0; }
.verdict p { margin: 0.4em 0; }
.note { color: #666; font-style: italic; }
.warning { background: #fff6e5; border-left: 4px solid #f0a020; padding: 6px 12px; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; font-weight: 600; }
tbody tr:nth-child(even) { background: #fbfbfb; }
table.summary td:first-child { white-space: nowrap; font-weight: 600; background: #f8f8f8; }
table.summary td { min-width: 12em; }
nav ol { columns: 2; padding-left: 1.2em; margin: 0.3em 0; }
.figure { margin: 0.4em 0 1em; }
figure.frames { margin: 0.6em 0 1.2em; }
figure.frames img { width: 100%; max-width: 960px; image-rendering: pixelated; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.9em; }
code { background: #f2f2f2; padding: 0 3px; border-radius: 3px; }
"""


def write_report(run_dirs: Iterable[str | Path], out_path: str | Path,
                 references: dict[str, float] | None = None) -> Path:
    """Read the experiment folders and write one offline HTML report; returns its path.
    `references`: named val_psnr values drawn as lines on the PSNR figures."""
    es = load_experiments(list(run_dirs))
    es.references = dict(references or {})
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(es), encoding="utf-8")
    return out


def render(es: ExperimentSet) -> str:
    sections = build_sections(es)
    n_figures = sum(len(s.figures) for s in sections)
    names = ", ".join(es.names)
    body = [f"<h1>Search report: {esc(names)}</h1>",
            f'<p class="sub">{esc(_subtitle(es))}</p>',
            _nav(sections), _summary_section(es)]
    fig_no = 0
    for s in sections:
        body.append(f'<section id="{esc(s.id)}"><h2>{esc(s.title)}</h2><p class="caption">{esc(s.caption)}</p>')
        for part in s.parts:
            if isinstance(part, go.Figure):
                body.append(_figure_html(part, fig_no))
                fig_no += 1
            else:
                body.append(part)
        body.append("</section>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>Search report: {esc(names)}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{CSS}</style>"
        f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>'
        f'</head><body data-figure-count="{n_figures}"><main>{"".join(body)}</main></body></html>\n')


def _figure_html(fig: go.Figure, i: int) -> str:
    h = fig.layout.height or 420
    div = fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig-{i}", default_height=f"{h}px",
                      config={"displaylogo": False, "responsive": True})
    return f'<div class="figure">{div}</div>'


def _subtitle(es: ExperimentSet) -> str:
    parts = []
    for e in es.experiments:
        started = e.summary.get("started_at")
        parts.append(f"{e.name}: {e.run_dir}" + (f", started {started}" if started else ""))
    return "; ".join(parts) + f". Generated {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}."


def _nav(sections: list[Section]) -> str:
    items = "".join(f'<li><a href="#{esc(s.id)}">{esc(s.title)}</a></li>' for s in sections)
    return f'<nav><ol><li><a href="#summary">Summary</a></li>{items}</ol></nav>'


# ---- the written summary ----------------------------------------------------------

def _summary_section(es: ExperimentSet) -> str:
    parts = ['<section id="summary"><h2>Summary</h2>']
    for e in es.experiments:
        if len(es.experiments) > 1:
            parts.append(f"<h3>{esc(e.name)}</h3>")
        parts.append('<div class="verdict">' + "".join(f"<p>{p}</p>" for p in verdict_sentences(e)) + "</div>")
    parts += [warning(w) for w in collect_axes(es).warnings]
    parts.append(summary_table([collect_summary(e) for e in es.experiments]))
    notes = [(e.name, n) for e in es.experiments for n in e.notes]
    if notes:
        parts.append("<h3>Notes on the data</h3><ul>" + "".join(
            f"<li>{esc(n if len(es.experiments) == 1 else f'{name}: {n}')}</li>" for name, n in notes) + "</ul>")
    parts.append("</section>")
    return "".join(parts)


def verdict_sentences(e: Experiment) -> list[str]:
    """The summary in words (already escaped HTML): who won, by how much, how sure.
    From summary.json's comparison block (re-evaluated best configurations) when
    the folder has one, else from the search trials alone."""
    s = collect_summary(e)
    c = collect_comparison(e)
    if c is not None:
        return comparison_sentences(e, s, c)
    v = collect_verdict(e)
    out = [esc(_progress_sentence(s))]
    if not v.ranking:
        return out + ["No trial has a val_psnr yet."]
    win = v.ranking[0]
    out.append(_ranking_sentence(v))
    if len(v.ranking) >= 2:
        out.append(esc(_sureness_sentence(win, v)))
    if v.baseline_psnr is not None:
        d = win.best_val_psnr - v.baseline_psnr
        out.append(esc(f"Copying the first frame into every later frame scores {v.baseline_psnr:.2f} dB; "
                       + (f"the best trial is {d:.2f} dB above it." if d > 0 else
                          f"the best trial is {-d:.2f} dB below it: the model has not yet learned more than copying.")))
    if v.still_improving_db is not None and v.still_improving_db > 0.1:
        out.append(esc(f"The best trial was still improving at its last epoch (+{v.still_improving_db:.2f} dB "
                       "over the last quarter of its epochs): a longer num_epoch may pay off."))
    return out


def _ranking_sentence(v: Verdict) -> str:
    win = v.ranking[0]
    first = (f"<b>{esc(win.strategy)}</b> KL annealing reached the best val_psnr, "
             f"<b>{win.best_val_psnr:.2f} dB</b> (trial {esc(win.best_trial_id)})")
    if len(v.ranking) >= 2:
        runner = v.ranking[1]
        rest = "; ".join(f"{esc(r.strategy)} {r.best_val_psnr:.2f} dB" for r in v.ranking[1:])
        return first + f", {v.gap_db:.2f} dB above {esc(runner.strategy)} ({rest})."
    return first + "; it was the only strategy with a result."


def comparison_sentences(e: Experiment, s: Summary, c: Comparison) -> list[str]:
    """The verdict from the comparison block, first: decisive, equivalent or not
    enough evidence and what it would take (search/comparison.py's sentence: one
    rule, written once); then what it rests on: the runs, the leader's mean and
    interval, the runner-up's, strata without enough evidence named as such
    (never as losers), the baseline, and whether the leader's best trial was
    still improving."""
    out = [esc(c.reason)] if c.reason else []
    out.append(esc(_progress_sentence(s)))
    if s.n_reeval:
        out.append(esc(_reeval_sentence(s)))
    by = {r.stratum: r for r in c.strata}
    lacking = [r for r in c.strata if not r.enough_evidence]
    w = by.get(c.winner) if c.winner is not None else None
    if w is None or w.mean is None or w.ci_low is None or w.ci_high is None:
        runs = ", ".join(f"{r.stratum} {r.n}" for r in c.strata) or "none"
        out.append(esc("No verdict yet: no strategy has enough evidence. An interval needs at least 2 full-budget "
                       f"re-runs of a strategy's best configuration (re-runs so far: {runs}); re-run the best "
                       "configurations with more seeds."))
        v = collect_verdict(e)
        if v.ranking:
            out.append("In the search alone (one seed per configuration): " + _ranking_sentence(v))
        return out
    fmt = _value_format(c)
    pct = f"{100 * c.confidence:g}%"
    out.append(f"<b>{esc(w.stratum)}</b> has the best mean {esc(c.metric)} over its best configuration's "
               f"full-budget re-runs: <b>{esc(_pm(w, fmt))}</b> ({esc(_interval(w, fmt, pct))}, "
               f"{esc(_runs_text(w, fmt))}; best trial {esc(w.best_trial or '-')}).")
    others = [by[n] for n in c.order if n in by and n != w.stratum and by[n].enough_evidence]
    others += [r for r in c.strata if r.enough_evidence and r.stratum != w.stratum and r not in others]
    if others:
        text = f"Runner-up: {others[0].stratum}, {_pm(others[0], fmt)} ({_interval(others[0], fmt, pct)}, " \
               f"n = {others[0].n})"
        if others[1:]:
            text += "; then " + "; ".join(f"{r.stratum} {_pm(r, fmt)} (n = {r.n})" for r in others[1:])
        out.append(esc(text + "."))
    if lacking:
        names = ", ".join(f"{r.stratum} ({r.n} full-budget re-run{'' if r.n == 1 else 's'}"
                          + (f"; {r.failed_text}" if r.failed_text else "") + ")" for r in lacking)
        out.append(esc(f"Not ranked: {names}. Too few re-runs for an interval is no verdict against a "
                       "strategy."))
    if c.baseline is not None and c.metric.endswith("psnr"):
        d = w.mean - c.baseline  # PSNR: higher is better
        out.append(esc(f"Copying the first frame into every later frame scores {c.baseline:.2f} dB; "
                       + (f"{w.stratum}'s mean is {d:.2f} dB above it." if d > 0 else
                          f"{w.stratum}'s mean is {-d:.2f} dB below it: the model has not yet learned more "
                          "than copying.")))
    gain = still_improving(e, w.best_trial) if w.best_trial else None
    if gain is not None and gain > 0.1:
        out.append(esc(f"{w.stratum}'s best trial was still improving at its last epoch (+{gain:.2f} dB over the "
                       "last quarter of its epochs): a longer num_epoch may pay off."))
    return out


class _Fmt(NamedTuple):
    """How the comparison's metric is written: PSNR in dB with 2 decimals, anything else plainly."""
    number: str
    unit: str

    def __call__(self, v: float | None) -> str:
        return "-" if v is None else self.number.format(v)


def _value_format(c: Comparison) -> _Fmt:
    return _Fmt("{:.2f}", " dB") if c.metric.endswith("psnr") else _Fmt("{:.4g}", "")


def _pm(r: StratumResult, fmt: _Fmt) -> str:
    """mean ± half the interval, e.g. '21.95 ± 0.46 dB'."""
    if r.ci_high is None or r.ci_low is None:
        return fmt(r.mean) + fmt.unit
    return f"{fmt(r.mean)} ± {fmt((r.ci_high - r.ci_low) / 2)}{fmt.unit}"


def _interval(r: StratumResult, fmt: _Fmt, pct: str) -> str:
    return f"{pct} interval {fmt(r.ci_low)}–{fmt(r.ci_high)}{fmt.unit}"


def _runs_text(r: StratumResult, fmt: _Fmt) -> str:
    """'n = 3 re-runs, 1 of 4 re-runs diverged; the search run that chose it (22.00 dB) is not counted'."""
    text = f"n = {r.n} re-run{'' if r.n == 1 else 's'}" + (f", {r.failed_text}" if r.failed_text else "")
    if r.original_value is not None:
        # It was chosen for being the stratum's maximum: counting it would flatter the mean.
        text += f"; the search run that chose it ({fmt(r.original_value)}{fmt.unit}) is not counted"
    return text


def _reeval_sentence(s: Summary) -> str:
    c = s.reeval_counts
    done = [f"{c[k]} {k}" for k in ("completed", "stopped", "diverged", "failed") if c.get(k)]
    if c.get("running"):
        done.append(f"{c['running']} still running or interrupted")
    return (f"Then each strategy's best configuration was re-run at the full budget with other seeds: "
            f"{s.n_reeval} re-evaluation run{'' if s.n_reeval == 1 else 's'} ({', '.join(done)}; "
            f"{s.reeval_epochs} epochs).")


def _progress_sentence(s: Summary) -> str:
    c = s.counts
    parts = [f"{c['completed']} completed", f"{c['stopped']} stopped early by ASHA"]
    parts += [f"{c[k]} {k}" for k in ("diverged", "failed") if c[k]]
    if c["running"]:
        parts.append(f"{c['running']} still running or interrupted")
    pct = 100 * s.epochs_spent / s.epochs_budget if s.epochs_budget else 0
    what = "search trials" if s.n_reeval else "trials"
    text = (f"{s.n_trials} {what}: {', '.join(parts)}. They trained {s.epochs_spent} of the "
            f"{s.epochs_budget} epochs a full run of every trial would take ({pct:.0f}%)")
    if s.epochs_saved_by_asha:
        text += f"; ASHA saved {s.epochs_saved_by_asha} epochs"
    return text + "."


def _sureness_sentence(win: StrategyResult, v: Verdict) -> str:
    if win.spread_range is None:
        return (f"How sure: {win.strategy} has {win.n_completed} completed trial(s), too few to measure how much "
                "its result varies between runs; rerun the best configuration of each strategy with several "
                "seeds before concluding.")
    spread = (f"{win.strategy}'s {win.n_completed} completed trials span {win.spread_range:.2f} dB "
              f"(std {win.spread_std:.2f} dB) across nuisance settings")
    if v.gap_exceeds_spread:
        return (f"How sure: {spread}; the {v.gap_db:.2f} dB gap is larger than that spread, so the lead is "
                "unlikely to be noise at this budget (still one seed per configuration).")
    return (f"How sure: {spread}; the {v.gap_db:.2f} dB gap is smaller than that spread, so another seed could "
            "change the order: rerun each strategy's best configuration with several seeds before concluding.")


def summary_table(summaries: list[Summary]) -> str:
    """One column per experiment, so several experiments read side by side."""
    def hms(t: float | None) -> str:
        if t is None:
            return "unknown (no summary.json)"
        return str(dt.timedelta(seconds=round(t)))
    rows: dict[str, list[str]] = {k: [] for k in (
        "search trials", "completed", "stopped early (ASHA)", "diverged", "failed", "running / interrupted",
        "re-evaluation runs",
        "epochs spent / full budget", "epochs saved by ASHA", "wall time", "trial compute time (sum)",
        "best trial", "best val_psnr (dB)", "copy-last-given-frame baseline (dB)", "best configuration")}
    for s in summaries:
        c = s.counts
        vals = [s.n_trials, c["completed"], c["stopped"], c["diverged"], c["failed"], c["running"],
                _reeval_cell(s),
                f"{s.epochs_spent} / {s.epochs_budget}", s.epochs_saved_by_asha, hms(s.wall_time_s),
                hms(s.compute_time_s), s.best_trial_id or "-",
                "-" if s.best_val_psnr is None else f"{s.best_val_psnr:.2f} (epoch {s.best_epoch})",
                "unknown" if s.baseline_psnr is None else f"{s.baseline_psnr:.2f}",
                ", ".join(f"{k}={_fmt(v)}" for k, v in s.best_config.items()) or "-"]
        for k, v in zip(rows, vals):
            rows[k].append(str(v))
    df = pd.DataFrame([[k, *v] for k, v in rows.items()], columns=["", *[s.experiment for s in summaries]])
    return table(df, css_class="summary")


def _reeval_cell(s: Summary) -> str:
    if not s.n_reeval:
        return "0"
    c = s.reeval_counts
    parts = [f"{c[k]} {k}" for k in ("completed", "stopped", "diverged", "failed", "running") if c.get(k)]
    return f"{s.n_reeval} ({', '.join(parts)}; {s.reeval_epochs} epochs)"


def _fmt(v: object) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)

