"""Tests of graft.train (options, schedule, optimizer, averaging, checkpoints, data, the loop)
and of steps/train.py's errors, on the tiny espeak-ng dataset of tests/tiny_asr.py.

Usage:
    .venv/bin/python -m pytest tests/test_train.py -q
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn


from graft.train.average import RunningAverage, average_state_dicts, interval_average
from graft.train.checkpoint import (compare_state_dict, latest_checkpoint, load_model_for_decoding,
                                    load_state_dict_checked, prune_step_checkpoints, save_checkpoint)
from graft.lang.langdir import load_lang_dir as load_lang
from graft.train.data import (AsrDataset, add_speed_perturbed, filter_cuts, load_cuts,
                              make_loader, make_train_sampler, parse_speed_factors, speed_audio_factor)
from graft.train.loop import encoder_frames_fn, train
from graft.train.optim import build_optimizer
from graft.train.options import DEFAULT_CONF, TrainConfig, load_train_conf, parse_train_args, read_yaml_conf
from graft.train.schedule import WarmupEdenLR, loss_scales
from graft.utils.errors import GraftError, MissingStageError

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def tiny_conf(tiny, exp_dir: Path, **kw) -> TrainConfig:
    base = dict(cuts_train=str(tiny.cuts_train), cuts_dev=str(tiny.cuts_dev), lang_dir=str(tiny.lang_dir),
                exp_dir=str(exp_dir), model_conf="tiny", num_epochs=1, max_duration=10.0, warm_steps=5,
                save_every_n=3, keep_last_k=2, log_interval=2, average_period=2)
    base.update(kw)
    return load_train_conf(**base)


def tiny_model(lang):
    from graft.model.build import build_model, load_model_conf

    torch.manual_seed(0)
    conf = load_model_conf("tiny")
    return build_model(conf, lang.vocab_size, lang.blank_id), conf


# ---- options -----------------------------------------------------------------------------
def test_yaml_is_the_one_source_of_defaults():
    keys = set(read_yaml_conf(DEFAULT_CONF))
    fields = set(TrainConfig.__dataclass_fields__)
    assert keys == fields
    conf = load_train_conf()
    assert conf.max_duration == read_yaml_conf(DEFAULT_CONF)["max_duration"]


def test_cli_overrides_yaml(tmp_path):
    recipe = tmp_path / "train.yaml"
    recipe.write_text("num_epochs: 7\nbase_lr: 0.01\n")
    conf = parse_train_args(["--config", str(recipe), "--cuts-train", "a", "--lang-dir", "b", "--exp-dir", "c",
                             "--base-lr", "0.5", "--speed-perturb", "true", "--max-minutes", "none"])
    assert conf.num_epochs == 7 and conf.base_lr == 0.5 and conf.speed_perturb is True
    assert conf.max_minutes is None and conf.dropout is None
    assert parse_train_args(["--cuts-train", "a", "--lang-dir", "b", "--exp-dir", "c", "--dropout", "0"]).dropout == 0.0
    with pytest.raises(GraftError, match="--dropout must be < 1, got 1.0"):
        load_train_conf(dropout=1.0)
    with pytest.raises(GraftError, match="--dropout must be >= 0, got -0.1"):
        load_train_conf(dropout=-0.1)
    with pytest.raises(GraftError, match="--cuts-train"):
        parse_train_args(["--lang-dir", "b", "--exp-dir", "c"])
    recipe.write_text("no_such_option: 1\n")
    with pytest.raises(GraftError, match="no_such_option"):
        load_train_conf(recipe)


# ---- schedules and optimizer -------------------------------------------------------------
def test_loss_scales_warm_up():
    assert loss_scales(0, 100, 0.5) == (1.0, 0.1)
    s, p = loss_scales(50, 100, 0.5)
    assert s == pytest.approx(0.75) and p == pytest.approx(0.55)
    assert loss_scales(100, 100, 0.5) == (0.5, 1.0)
    assert loss_scales(10**6, 100, 0.5) == (0.5, 1.0)


def test_lr_schedule_groups_and_state():
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    opt = torch.optim.AdamW([{"params": a.parameters(), "lr": 1.0}, {"params": b.parameters(), "lr": 0.1}])
    sched = WarmupEdenLR(opt, warm_steps=10, lr_steps=100, lr_epochs=2)
    lrs = []
    for _ in range(30):
        lrs.append(sched.get_last_lr())
        sched.step_batch()
    assert lrs[0][0] == pytest.approx(0.1, rel=0.01)            # (0 + 1) / 10 of the peak
    assert max(l[0] for l in lrs) <= 1.0 and lrs[9][0] > lrs[5][0]
    assert all(l[1] == pytest.approx(l[0] * 0.1) for l in lrs)  # per-group ratio kept
    sched.set_epoch(3)
    state = sched.state_dict()
    sched2 = WarmupEdenLR(opt, warm_steps=10, lr_steps=100, lr_epochs=2)
    sched2.load_state_dict(state)
    assert sched2.get_last_lr() == sched.get_last_lr() and sched2.num_steps == 30


def test_optimizer_groups_and_frozen():
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3), nn.Linear(3, 3))
    for p in model[0].parameters():
        p.requires_grad = False
    opt = build_optimizer(model, base_lr=1e-3, weight_decay=0.1,
                          param_groups=[{"params": model[1].parameters(), "lr_scale": 0.1}])
    ids = {id(p) for g in opt.param_groups for p in g["params"]}
    assert not any(id(p) in ids for p in model[0].parameters())
    assert all(id(p) in ids for p in model[2].parameters())
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-4)
    plain = build_optimizer(model, base_lr=1e-3, weight_decay=0.1)
    assert sorted(g["weight_decay"] for g in plain.param_groups) == [0.0, 0.1]   # no decay on biases


# ---- averaging -----------------------------------------------------------------------------
def test_running_average_is_exact_mean_and_intervals():
    m = nn.Linear(2, 1)
    avg = RunningAverage.from_model(m)
    snaps = []
    for i in range(6):
        with torch.no_grad():
            m.weight.fill_(float(i))
        avg.update(m)
        snaps.append(float(i))
        if i == 2:
            mid_state, mid_count = {k: v.clone() for k, v in avg.state.items()}, avg.count
    assert avg.state["weight"].dtype == torch.float64
    assert float(avg.state["weight"][0, 0]) == pytest.approx(sum(snaps) / 6)
    last3 = interval_average(avg.state, avg.count, mid_state, mid_count)
    assert float(last3["weight"][0, 0]) == pytest.approx((3 + 4 + 5) / 3)
    assert last3["weight"].dtype == torch.float32
    sd = average_state_dicts([{"w": torch.tensor([1.0])}, {"w": torch.tensor([3.0])}])
    assert float(sd["w"]) == 2.0


# ---- checkpoints ---------------------------------------------------------------------------
def test_checked_load_names_each_mismatch():
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    other = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 5)).state_dict()
    other["extra.weight"] = torch.zeros(1)
    mm = compare_state_dict(model, other)
    assert {k for k, _, _ in mm.shapes} == {"1.weight", "1.bias"} and mm.unexpected == ["extra.weight"]
    with pytest.raises(GraftError, match=r"1\.weight: checkpoint \[5, 3\] vs model \[2, 3\]"):
        load_state_dict_checked(model, other, source="x.pt")
    before = model[1].weight.clone()
    mm = load_state_dict_checked(model, other, strict=False)
    assert torch.equal(model[0].weight, other["0.weight"]) and torch.equal(model[1].weight, before)
    assert mm.shapes


def test_latest_and_pruning(tmp_path):
    for step in (3, 6, 9):
        save_checkpoint(tmp_path / f"checkpoint-{step}.pt", {"model": {}, "progress": {"step": step}})
    save_checkpoint(tmp_path / "epoch-1.pt", {"model": {}, "progress": {"step": 7}})
    assert latest_checkpoint(tmp_path).name == "checkpoint-9.pt"
    save_checkpoint(tmp_path / "epoch-2.pt", {"model": {}, "progress": {"step": 9}})
    assert latest_checkpoint(tmp_path).name == "epoch-2.pt"          # an epoch end wins a tie
    prune_step_checkpoints(tmp_path, keep_last_k=2)
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*.pt")) == ["checkpoint-6.pt", "checkpoint-9.pt"]
    assert not list(tmp_path.glob(".tmp-*"))


# ---- data ----------------------------------------------------------------------------------
def test_missing_inputs_name_their_stage(tmp_path, tiny):
    with pytest.raises(MissingStageError, match="stage 3"):
        load_lang(tmp_path / "data/lang/en_bpe500")
    with pytest.raises(MissingStageError, match="stage 2"):
        load_cuts(tmp_path / "data/fbank/en/cuts_train.jsonl.gz")
    bad = tmp_path / "lang"
    bad.mkdir()
    (bad / "bpe.model").write_bytes((tiny.lang_dir / "bpe.model").read_bytes())
    (bad / "tokens.txt").write_text("<blk> 0\na 1\n")
    with pytest.raises(GraftError, match="inconsistent"):
        load_lang(bad).sp                      # the BPE model is read on first use


def test_filter_counts_cuts_too_short_for_their_tokens(tiny):
    lang = load_lang(tiny.lang_dir)
    cuts = load_cuts(tiny.cuts_train)
    first = next(iter(cuts))
    short = first.truncate(duration=0.12).with_id("short")     # 12 frames -> 1 encoder frame
    from lhotse import CutSet

    mixed = CutSet.from_cuts(list(cuts) + [short])
    frames = lambda t: ((t - 1) // 2 - 1) // 2
    kept, report = filter_cuts(mixed, lang, frames, min_duration=0.0)
    assert report.kept == len(cuts) and report.dropped == {"too_short_for_tokens": 1}
    assert "short" not in {c.id for c in kept} and "too_short_for_tokens: 1" in report.summary()
    _, report = filter_cuts(cuts, lang, frames, min_duration=100.0)
    assert report.kept == 0 and report.dropped["shorter_than_min_duration"] == len(cuts)


def test_dataset_batches_and_speed_perturbation(tiny):
    lang = load_lang(tiny.lang_dir)
    cuts = load_cuts(tiny.cuts_dev)
    sp = add_speed_perturbed(cuts)
    assert len(sp) == 3 * len(cuts)
    slow = [c for c in sp if c.id.endswith("_sp0.9")][0]
    orig = [c for c in cuts if c.id == slow.id[: -len("_sp0.9")]][0]
    assert not slow.has_features and slow.duration == pytest.approx(orig.duration / 0.9, rel=0.01)
    ds = AsrDataset(lang)
    on_the_fly = torch.from_numpy(ds._features(orig.drop_features()))      # stage 2's extractor
    assert torch.allclose(on_the_fly, torch.from_numpy(orig.load_features()), atol=0.05)   # lilcom error
    batch = ds[sp.subset(cut_ids=[orig.id, slow.id])]
    assert batch["features"].shape[0] == 2 and batch["features"].shape[2] == 80
    assert batch["feature_lens"].tolist()[0] == pytest.approx(orig.num_frames / 0.9, abs=3)
    assert batch["tokens"][0] == batch["tokens"][1] == lang.encode([orig.supervisions[0].text])[0]
    assert batch["cut_ids"] == [slow.id, orig.id]                 # longest first
    # the copy's features are kept for the next epochs: the same values, not read or computed again
    assert list(ds.cache) == [orig.id, slow.id] and ds.cache_bytes == sum(f.nbytes for f in ds.cache.values())
    kept = ds.cache[slow.id]
    assert ds._features(slow) is kept
    assert torch.equal(torch.from_numpy(kept), torch.from_numpy(AsrDataset(lang)._features(slow)))
    again = ds[sp.subset(cut_ids=[orig.id, slow.id])]
    assert torch.equal(again["features"], batch["features"])
    small = AsrDataset(lang, cache_mb=0)                          # a full cache: computed every time
    small[sp.subset(cut_ids=[slow.id])]
    assert small.cache == {} and small.cache_bytes == 0


def test_dataset_token_ids_are_encoded_once_and_equal_sentencepiece_s(tiny, monkeypatch):
    from graft.train import data as data_mod

    lang = load_lang(tiny.lang_dir)
    cuts = load_cuts(tiny.cuts_dev)
    texts = [c.supervisions[0].text for c in cuts]
    ds = AsrDataset(lang)
    calls = []
    encode = lang.encode
    monkeypatch.setattr(lang, "encode", lambda t: calls.append(list(t)) or encode(t))
    first = ds[cuts]
    second = ds[cuts]
    by_id = dict(zip([c.id for c in cuts], encode(texts)))
    assert first["tokens"] == second["tokens"] == [by_id[i] for i in first["cut_ids"]]
    assert len(calls) == 1 and sorted(calls[0]) == sorted(set(texts))    # the second batch: from the cache
    second["tokens"][0].append(-1)                                      # callers get their own lists
    assert ds[cuts]["tokens"] == first["tokens"]
    monkeypatch.setattr(data_mod, "TOKEN_CACHE_TEXTS", 1)                # a full cache: encoded every time
    capped = AsrDataset(lang)
    assert capped[cuts]["tokens"] == capped[cuts]["tokens"] == first["tokens"] and len(capped.token_cache) == 1


def test_other_speed_factors():
    assert parse_speed_factors(None) == parse_speed_factors("") == (0.9, 1.1)
    assert parse_speed_factors("0.8,0.9 1.1, 1.2") == (0.8, 0.9, 1.1, 1.2)
    assert speed_audio_factor((0.8, 1.25)) == pytest.approx(1 + 1.25 + 0.8)
    for bad, why in (("0.9 x", "'x' is not a number"), ("1.0", "not 1"), ("0.4", "must be in (0.5, 2)"),
                     ("0.9 0.9", "0.9 is given twice")):
        with pytest.raises(GraftError, match=re.escape(why)):
            parse_speed_factors(bad)
    # one spelling in the stored options, so "0.8,1.2" and "0.8 1.2" resume each other's runs
    assert load_train_conf(cuts_train="c", lang_dir="l", exp_dir="e", speed_factors="0.80,1.2").speed_factors == "0.8 1.2"
    with pytest.raises(GraftError, match=re.escape("--speed-factors: 'fast' is not a number")):
        load_train_conf(cuts_train="c", lang_dir="l", exp_dir="e", speed_factors="fast")


def test_training_with_four_speed_factors(tiny, tmp_path):
    """--speed-factors reaches the loop: five versions of every cut, said in the log."""
    exp = tmp_path / "exp"
    conf = tiny_conf(tiny, exp, cuts_dev=None, speed_perturb=True, speed_factors="0.8 0.9 1.1 1.2", num_epochs=1)
    lang = load_lang(tiny.lang_dir)
    model, mconf = tiny_model(lang)
    assert train(model, conf, lang, mconf).finished
    n = len(load_cuts(tiny.cuts_train))
    log = "".join(p.read_text() for p in (exp / "log").glob("train-*.log"))
    assert f"speed perturbation: {n} cuts -> {5 * n} (x0.8, x0.9, x1.1, x1.2 copies; fbank on the fly)" in log


def test_resuming_inside_an_epoch_skips_done_batches(tiny):
    cuts = load_cuts(tiny.cuts_train)
    lang = load_lang(tiny.lang_dir)

    def ids(skip):
        s = make_train_sampler(cuts, 8.0, seed=3, world_size=1, rank=0)
        s.set_epoch(2)
        return [b["cut_ids"] for b in make_loader(AsrDataset(lang), s, skip_batches=skip)]

    full = ids(0)
    assert len(full) > 3 and ids(2) == full[2:]


# ---- the loop ------------------------------------------------------------------------------
def test_train_writes_everything_and_decoding_loads_it(tmp_path, tiny):
    lang = load_lang(tiny.lang_dir)
    model, mconf = tiny_model(lang)
    exp = tmp_path / "exp"
    result = train(model, tiny_conf(tiny, exp, num_epochs=2), lang, mconf)
    assert result.finished and result.epochs_done == 2 and not result.skipped_batches
    for name in ("epoch-1.pt", "epoch-2.pt", "params.json", "loss.png"):
        assert (exp / name).is_file(), name
    assert len(list(exp.glob("checkpoint-*.pt"))) == 2                           # keep_last_k
    assert list((exp / "tensorboard").glob("events.out.tfevents.*"))
    assert list((exp / "log").glob("train-*.log"))
    params = json.loads((exp / "params.json").read_text())
    assert {"torch", "lhotse", "python", "git_sha"} <= set(params["versions"])
    assert params["train_conf"]["model_conf"] == "tiny" and params["lang"]["vocab_size"] == lang.vocab_size
    assert len(result.history["valid"]) == 2
    assert result.history["train"][-1][1] < result.history["train"][0][1]      # it learns

    m1, info = load_model_for_decoding(exp)
    assert info["epoch"] == 2 and info["vocab_size"] == lang.vocab_size and not m1.training
    assert torch.equal(m1.encoder.embed.out.weight, model.encoder.embed.out.weight)
    m2, info = load_model_for_decoding(exp, epoch=2, avg=2)
    assert info["checkpoints"][0].endswith("epoch-1.pt")
    m3, info = load_model_for_decoding(exp, epoch=2, avg=1, use_averaged_model=True)
    assert not torch.equal(m3.joiner.output_linear.weight, m1.joiner.output_linear.weight)
    with pytest.raises(GraftError, match="epoch-0.pt|missing"):
        load_model_for_decoding(exp, epoch=2, avg=3)

    again = train(model, tiny_conf(tiny, exp, num_epochs=2), lang, mconf)     # nothing left to do
    assert again.finished and again.step == result.step


def test_hooks_frozen_groups_extra_loss_and_nonfinite_guard(tmp_path, tiny):
    lang = load_lang(tiny.lang_dir)
    model, mconf = tiny_model(lang)
    for p in model.encoder.embed.parameters():
        p.requires_grad = False
    frozen = {k: v.clone() for k, v in model.encoder.embed.state_dict().items()}
    calls = {"n": 0}

    def extra_loss(m):
        calls["n"] += 1
        p = m.joiner.output_linear.weight
        if calls["n"] == 2:
            return p.sum() * float("nan")                        # non-finite loss
        if calls["n"] == 3:
            return torch.sqrt((p * 0.0).sum())                   # finite loss, NaN gradient
        return 1e-3 * (p ** 2).sum()

    groups = [{"params": model.joiner.parameters(), "lr_scale": 2.0}]
    result = train(model, tiny_conf(tiny, tmp_path / "exp", cuts_dev=None), lang, mconf,
                   param_groups=groups, extra_loss_fn=extra_loss, checkpoint_extra={"transfer": "test"})
    assert result.skipped_batches == {"nonfinite_loss": 1, "nonfinite_grad": 1}
    assert all(torch.isfinite(p).all() for p in model.parameters())
    for k, v in model.encoder.embed.state_dict().items():
        assert torch.equal(v, frozen[k]), k
    ckpt = torch.load(tmp_path / "exp" / "epoch-1.pt", weights_only=False)
    assert ckpt["extra"] == {"transfer": "test"} and ckpt["skipped"]["nonfinite_loss"] == 1
    groups_lr = [g["initial_lr"] for g in ckpt["optimizer"]["param_groups"]]
    assert groups_lr[0] == pytest.approx(2 * groups_lr[-1])


def test_time_budget_stops_with_a_checkpoint_and_continues(tmp_path, tiny):
    lang = load_lang(tiny.lang_dir)
    model, mconf = tiny_model(lang)
    exp = tmp_path / "exp"
    r1 = train(model, tiny_conf(tiny, exp, cuts_dev=None, max_minutes=1e-6, save_every_n=0), lang, mconf)
    assert r1.stopped_by_budget and not r1.finished and r1.step == 1
    assert (exp / "checkpoint-1.pt").is_file()
    model2, _ = tiny_model(lang)
    r2 = train(model2, tiny_conf(tiny, exp, cuts_dev=None, save_every_n=0), lang, mconf)
    assert r2.finished and r2.resumed_from.endswith("checkpoint-1.pt") and r2.step > 1


def test_spec_augment_starts_at_its_epoch(tmp_path, tiny, monkeypatch):
    from lhotse.dataset import SpecAugment

    calls = {"n": 0}

    class CountingSpecAugment(SpecAugment):
        def __call__(self, *args, **kwargs):
            calls["n"] += 1
            return super().__call__(*args, **kwargs)

    monkeypatch.setattr("graft.train.loop.SpecAugment", CountingSpecAugment)
    lang = load_lang(tiny.lang_dir)
    exp = tmp_path / "exp"
    model, mconf = tiny_model(lang)
    conf = dict(cuts_dev=None, save_every_n=0, spec_augment=True, spec_augment_from_epoch=2)
    r1 = train(model, tiny_conf(tiny, exp, num_epochs=1, **conf), lang, mconf)
    assert r1.step > 0 and calls["n"] == 0                   # epoch 1: none
    model2, _ = tiny_model(lang)
    r = train(model2, tiny_conf(tiny, exp, num_epochs=2, **conf), lang, mconf)
    assert r.finished and calls["n"] == r.step - r1.step > 0  # epoch 2 (resumed): every batch


def test_encoder_frames_matches_the_model(tiny):
    lang = load_lang(tiny.lang_dir)
    model, _ = tiny_model(lang)
    frames = encoder_frames_fn(model)
    x = torch.zeros(1, 50, 80)
    _, lens = model.encoder(x, torch.tensor([50]))
    assert frames(50) == int(lens[0])


# ---- steps/train.py errors -----------------------------------------------------------------
def run_step(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([PY, str(ROOT / "steps" / "train.py"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})


def main_errors(args: list[str], capsys) -> str:
    sys.path.insert(0, str(ROOT / "steps"))
    try:
        import importlib

        step = importlib.import_module("train")
    finally:
        sys.path.pop(0)
    assert step.main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("ERROR: ")
    return err[-1]


def test_step_errors_are_one_line(tmp_path, tiny, capsys):
    common = ["--model-conf", "tiny", "--exp-dir", str(tmp_path / "exp")]
    msg = main_errors(["--cuts-train", str(tmp_path / "nope.jsonl.gz"), "--lang-dir", str(tiny.lang_dir), *common], capsys)
    assert "stage 2" in msg and "nope.jsonl.gz" in msg
    msg = main_errors(["--cuts-train", str(tiny.cuts_train), "--lang-dir", str(tmp_path / "en_bpe9"), *common], capsys)
    assert "stage 3" in msg and "en_bpe9" in msg
    msg = main_errors(["--cuts-train", str(tiny.cuts_train), "--lang-dir", str(tiny.lang_dir),
                       "--min-cut-duration", "1000", *common], capsys)
    assert "no training cuts left" in msg


def test_resuming_with_another_vocabulary_is_refused(tmp_path, tiny):
    exp = tmp_path / "exp"
    lang = load_lang(tiny.lang_dir)
    model, mconf = tiny_model(lang)
    assert train(model, tiny_conf(tiny, exp, cuts_dev=None, max_duration=20.0), lang, mconf).finished
    common = ["--cuts-train", str(tiny.cuts_train), "--model-conf", "tiny", "--exp-dir", str(exp)]
    other = tmp_path / "en_bpe40"
    from tiny_asr import _train_bpe, SENTENCES

    _train_bpe(SENTENCES, other, 40)
    proc = run_step([*common, "--lang-dir", str(other), "--num-epochs", "2"], tmp_path)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ERROR: ") and "vocab size" in last and "Traceback" not in proc.stderr


def test_resuming_with_other_training_options_is_refused(tmp_path, tiny):
    """A finished run asked for more epochs resumes; asked for the same epochs with another option
    that shapes the model (a recipe whose grid turned speed perturbation on) it stops with the
    options that differ, instead of saying "nothing to do" over the old model."""
    exp = tmp_path / "exp"
    lang = load_lang(tiny.lang_dir)
    model, mconf = tiny_model(lang)
    assert train(model, tiny_conf(tiny, exp, cuts_dev=None), lang, mconf).finished
    with pytest.raises(GraftError) as e:
        train(tiny_model(lang)[0], tiny_conf(tiny, exp, cuts_dev=None, speed_perturb=True, base_lr=0.001),
              lang, mconf)
    msg = str(e.value)
    assert "other training options (base_lr: 0.002 -> 0.001, speed_perturb: False -> True)" in msg
    assert "new --exp-dir" in msg and "--force true" in msg and str(exp) in msg
    # more epochs, another log interval and no checkpoints between epochs: the same run, resumed
    r = train(tiny_model(lang)[0], tiny_conf(tiny, exp, cuts_dev=None, num_epochs=2, log_interval=5, save_every_n=0),
              lang, mconf)
    assert r.finished and r.resumed_from.endswith("epoch-1.pt") and r.epochs_done == 2
    # the command a recipe runs: one line, no traceback
    common = ["--cuts-train", str(tiny.cuts_train), "--lang-dir", str(tiny.lang_dir), "--model-conf", "tiny",
              "--exp-dir", str(exp), "--num-epochs", "2", "--max-duration", "10", "--warm-steps", "5",
              "--average-period", "2", "--ctc-weight", "0.3"]
    proc = run_step(common, tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ERROR: ") and "ctc_weight: 0.0 -> 0.3" in last
