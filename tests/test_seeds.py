"""Models trained with several seeds: the grid's `seeds` lines (steps/grid.py), the stage that
trains them (utils/recipe_stages.sh), and the report's "Training seeds" section
(graft.score.seeds, steps/report.py) on hand-made scored decode dirs.

Usage:
    .venv/bin/python -m pytest tests/test_seeds.py -q
"""
from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from graft.score.bootstrap import scored_utterances
from graft.score.report import Experiment
from graft.score.seeds import compare_seed_means, pooled_counts, seed_rows, seeds_markdown
from graft.utils.errors import GraftError
from test_bootstrap import PYTHON, REPO, make_lang, make_scored_root
from test_grid_converged import fbank, grid_yaml, recipe_dir, run_grid, shell  # noqa: F401  (fbank: a fixture)

sys.path.insert(0, str(REPO / "steps"))
import grid as grid_step  # noqa: E402  steps/grid.py


def test_grid_adds_seed_lines_of_the_main_models(tmp_path, fbank):  # noqa: F811
    fb, _ = fbank
    path = grid_yaml(tmp_path, "seeds: 3\n")
    models = grid_step.expand(grid_step.load_grid(str(path)), fb)
    assert [(m.name, m.group) for m in models] == [
        ("scratch_0.5m", "scratch"), ("transfer_encoder_decoder_0.5m", "transfer"),
        ("scratch_0.5m_seed1", "scratch_seed"), ("transfer_encoder_decoder_0.5m_seed1", "transfer_seed"),
        ("scratch_0.5m_seed2", "scratch_seed"), ("transfer_encoder_decoder_0.5m_seed2", "transfer_seed")]
    base, seed2 = models[1], models[-1]
    assert seed2.train_opts == base.train_opts + " --seed 2"          # the same run but its seed
    assert (seed2.epochs, seed2.split, seed2.preset, seed2.methods) == (base.epochs, base.split, base.preset,
                                                                       base.methods)
    # absent: one seed (the lines as before); the option overrides the yaml
    one = grid_step.expand(grid_step.load_grid(str(grid_yaml(tmp_path, ""))), fb)
    assert [m.name for m in one] == ["scratch_0.5m", "transfer_encoder_decoder_0.5m"]
    p = run_grid("--grid", grid_yaml(tmp_path, ""), "--fbank-dir", fb, "--seeds", "2")
    assert p.returncode == 0, p.stderr
    assert [line.split("\t")[1] for line in p.stdout.strip().splitlines()] == [
        "scratch", "transfer", "scratch_seed", "transfer_seed"]
    p = run_grid("--grid", grid_yaml(tmp_path, ""), "--fbank-dir", fb, "--seeds", "0")
    assert p.returncode == 1 and p.stderr.strip().splitlines()[-1] == (
        "ERROR: --seeds must be an integer >= 1 (training runs per model, seeds 0 .. N-1), got '0'")


@pytest.mark.parametrize("value", ["0", "two", "1.5", "true"])
def test_bad_seeds_name_the_file(tmp_path, value):
    with pytest.raises(GraftError, match="g.yaml: seeds must be an integer >= 1"):
        grid_step.load_grid(str(grid_yaml(tmp_path, f"seeds: {value}\n")))


def test_the_grid_stage_trains_scratch_seeds_from_scratch(tmp_path, fbank):  # noqa: F811
    fb, _ = fbank
    recipe_dir(tmp_path, fb, epochs=(2,))
    p = shell(f'step() {{ echo "STEP $*"; }}\ngrid_stage exp/en cs 40 cs {grid_yaml(tmp_path, "seeds: 2")} "" 2 ""',
              tmp_path)
    assert p.returncode == 0, p.stderr
    steps = {line.split()[1]: line for line in p.stdout.splitlines() if line.startswith("STEP ")}
    assert set(steps) == {"stage4_train_cs_scratch_0.5m", "stage5_transfer_cs_transfer_encoder_decoder_0.5m",
                          "stage4_train_cs_scratch_0.5m_seed1", "stage5_transfer_cs_transfer_encoder_decoder_0.5m_seed1"}
    assert "steps/train.py" in steps["stage4_train_cs_scratch_0.5m_seed1"]        # not a transfer
    assert "--seed 1" in steps["stage4_train_cs_scratch_0.5m_seed1"]
    assert "--seed 1" in steps["stage5_transfer_cs_transfer_encoder_decoder_0.5m_seed1"]
    assert "--seed" not in steps["stage5_transfer_cs_transfer_encoder_decoder_0.5m"]


def seeded_grid(tmp_path: Path) -> list[Experiment]:
    """Scratch and transfer at 15 min, 2 runs each (greedy errors per utterance out of 3 words),
    and a 30-minute transfer with one run."""
    lang = make_lang(tmp_path)
    n = 12

    def root(name: str, greedy: list[int]) -> Path:
        return make_scored_root(tmp_path / name, lang, ["right"] * n, greedy)
    return [Experiment("s15", "scratch", 15.0, root("s", [3] * n)),
            Experiment("t15", "transfer", 15.0, root("t", [1] * n)),
            Experiment("t30", "transfer", 30.0, root("t30", [0] * n)),
            Experiment("s15 seed1", "scratch_seed", 15.0, root("s1", [2] * n)),
            Experiment("t15 seed1", "transfer_seed", 15.0, root("t1", [0, 1] * (n // 2)))]


def test_seed_rows_give_runs_means_and_the_difference_of_means(tmp_path):
    exps = seeded_grid(tmp_path)
    rows = seed_rows(exps, ["greedy"], n=300, seed=0)
    runs = {r["group"]: r for r in rows if r["kind"] == "runs"}
    assert set(runs) == {"transfer", "scratch"}                                    # t30 has one run: none
    t, s = runs["transfer"], runs["scratch"]
    assert t["labels"] == ["t15", "t15 seed1"] and t["wers"] == pytest.approx([100 / 3, 100 / 6])
    assert t["mean"] == pytest.approx(25.0) and t["sd"] == pytest.approx(statistics.stdev([100 / 3, 100 / 6]))
    assert s["wers"] == pytest.approx([100.0, 200 / 3]) and s["mean"] == pytest.approx(250 / 3)
    diff = next(r for r in rows if r["kind"] == "transfer vs scratch")
    res = diff["result"]
    assert (diff["runs_a"], diff["runs_b"]) == (2, 2) and diff["minutes"] == 15.0
    assert res.wer_a == pytest.approx(25.0) and res.wer_b == pytest.approx(250 / 3)
    assert res.delta == pytest.approx(25.0 - 250 / 3) and res.hi < 0
    text = seeds_markdown(rows)
    assert "| t15 | 15 | greedy | 2 | 33.33 / 16.67 | 25.00 | 11.79 |" in text
    assert "| transfer vs scratch | 15 | greedy | 2 vs 2 | 25.00 | 83.33 | -58.33 [" in text
    assert seeds_markdown(seed_rows(exps[:3], ["greedy"])) == ""                 # one run each: no section


def test_pooling_refuses_runs_of_other_sets(tmp_path):
    lang = make_lang(tmp_path)
    a = scored_utterances(make_scored_root(tmp_path / "a", lang, ["right"] * 4, [0] * 4), "greedy")
    b = scored_utterances(make_scored_root(tmp_path / "b", lang, ["right"] * 5, [0] * 5), "greedy")
    assert pooled_counts([a, a]) == {u: (0, 3) for u in a.counts}
    with pytest.raises(GraftError, match="not the same set"):
        compare_seed_means([a, b], [a, a])


def test_report_step_has_the_seeds_section(tmp_path):
    exps = seeded_grid(tmp_path)
    out = tmp_path / "RESULTS.md"
    args = [PYTHON, str(REPO / "steps" / "report.py"), "--out", str(out), "--methods", "greedy",
            *[a for e in exps for a in ("--experiment", f"{e.label}|{e.group}|{e.minutes:g}|{e.decode_root}")]]
    p = subprocess.run([*args, "--bootstrap", "200"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert p.returncode == 0, p.stderr
    text = out.read_text()
    assert "## Training seeds" in text and "| s15 | 15 | greedy | 2 | 100.00 / 66.67 | 83.33 | 23.57 |" in text
    assert "| transfer vs scratch | 15 | greedy | 2 vs 2 |" in text
    assert "| t15 | s15 | 15 | greedy |" in text                                   # the seed-0 comparison stays
    p = subprocess.run([*args, "--bootstrap", "0"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert p.returncode == 0 and "| 2 | 33.33 / 16.67 |" in out.read_text() and "2 vs 2" not in out.read_text()
