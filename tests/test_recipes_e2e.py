"""The whole mission across recipes, from `./run.sh` alone: a tiny LibriSpeech-layout recipe
trains a source model (BPE 36); a tiny Common Voice-layout recipe (BPE 40) grafts it through
stage 5 and decodes and scores every model in stages 6-7; a second run skips every step;
stage 3 with another LM order builds a new LM dir and keeps the BPE model.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from corpus_fixtures import graft_tree, make_commonvoice, make_librispeech, run_recipe

TRAIN = ["--model-conf", "tiny", "--max-duration", "20", "--nj", "1"]
TRAIN_OPTS = "--ctc-weight 0.2 --warm-steps 5 --spec-augment false --num-buckets 2"


@pytest.fixture(scope="module")
def mission(tmp_path_factory):
    root = tmp_path_factory.mktemp("mission")
    tree = graft_tree(root / "tree", ["librispeech", "commonvoice"])
    raw_en = make_librispeech(root / "raw_en")
    make_commonvoice(root / "raw_cs")
    en = run_recipe(tree, "librispeech", "--raw-dir", raw_en, "--subset", "mini", "--vocab-size", 36,
                    "--num-epochs", 2, "--train-opts", TRAIN_OPTS, *TRAIN, timeout=900)
    cs_opts = ["--raw-dir", root / "raw_cs", "--lang", "cs", "--vocab-size", 40, "--train-subsets", "",
               "--num-epochs", 2, "--train-opts", TRAIN_OPTS, "--source-exp", "../../librispeech/ASR/exp/en_tiny",
               "--grid", "single", "--grid-opts", "--budget-minutes 0.3", *TRAIN]
    cs = run_recipe(tree, "commonvoice", *cs_opts, timeout=900)
    again = run_recipe(tree, "commonvoice", *cs_opts, timeout=300)
    return {"tree": tree, "en": en, "cs": cs, "again": again, "cs_opts": cs_opts}


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_source_recipe_runs_stages_0_to_8_and_skips_stage_5(mission):
    recipe = mission["tree"] / "egs/librispeech/ASR"
    assert "stage 5 skipped: no source model (--source-exp DIR" in mission["en"].stderr
    exp = recipe / "exp/en_tiny"
    assert (exp / "epoch-2.pt").is_file() and (exp / "model.yaml").is_file()
    lang = _json(exp / "lang/lang.json")
    assert lang["vocab_size"] == 36 and lang["fingerprint"] == _json(recipe / "data/lang/en_bpe36/lang.json")["fingerprint"]
    sel = _json(exp / "decode_epoch2_avg2/ctc-hlg/selection.json")
    assert sel["dev_set"] == "dev" and "test" in sel
    assert "| en_tiny |" in (recipe / "RESULTS.md").read_text()


def test_target_recipe_grafts_a_source_of_another_bpe_size(mission):
    recipe = mission["tree"] / "egs/commonvoice/ASR"
    exp = recipe / "exp/cs_transfer_encoder_decoder_all"
    record = _json(exp / "transfer.json")
    assert record["source"]["lang_dir"].endswith("librispeech/ASR/exp/en_tiny/lang")  # brought by the model
    assert record["totals"]["shared_pieces"] >= 3  # pieces matched by their strings across BPE 36 -> 40
    assert _json(exp / "lang/lang.json")["vocab_size"] == 40
    # epochs from the budget and the manifest (0.3 min of audio over ~0.2 min of train): 2
    assert sorted(p.name for p in exp.glob("epoch-*.pt")) == ["epoch-1.pt", "epoch-2.pt"]
    decode = _json(exp / "decode_epoch2_avg2/decode.json")
    assert decode["fingerprint"] == _json(exp / "lang/lang.json")["fingerprint"]
    assert decode["lm_dir"] == "data/lang/cs_bpe40/lm_3gram" and decode["w0"] == pytest.approx(0.75)
    for method in ("greedy", "beam", "beam-lex", "ctc-hlg", "ctc-hlg-rnnt"):
        assert (exp / f"decode_epoch2_avg2/{method}/test/scoring/best_wer").is_file(), method
    lex = _json(exp / "decode_epoch2_avg2/beam-lex/test/decode.json")["lexicon"]  # the LM dir's whole lexicon
    words = (recipe / "data/lang/cs_bpe40/lm_3gram/lexicon.txt").read_text(encoding="utf-8").splitlines()
    assert lex["words"] == len(words) and lex["lm_weight"] == pytest.approx(0.3)
    joint = _json(exp / "decode_epoch2_avg2/ctc-hlg-rnnt/test/decode.json")["nbest"]
    assert joint["n"] == 20 and joint["rnnt_weight"] == pytest.approx(0.5) and joint["mean_distinct"] >= 1
    export = _json(exp / "export/epoch2_avg2/export.json")  # stage 8: an ONNX folder for sherpa-onnx
    assert (exp / "export/epoch2_avg2/encoder.onnx").is_file() and (exp / "export/epoch2_avg2/HLG.fst").is_file()
    assert json.dumps(export).count(decode["fingerprint"]) >= 1
    results = (recipe / "RESULTS.md").read_text()
    assert re.search(r"\| cs_transfer_encoder_decoder_all \| [0-9.]+ \| ctc-hlg \|", results), results
    assert "| cs_tiny |" in results  # the stage-4 baseline (from scratch on all of train)


def test_second_run_of_an_unchanged_recipe_skips_every_step(mission):
    err = mission["again"].stderr
    ran = re.findall(r"run '([^']+)'", err)
    assert ran == [], ran
    skipped = re.findall(r"skip '([^']+)': done, inputs and options unchanged", err)
    for needle in ("stage0_commonvoice_download", "stage1_manifests_cs", "stage2_fbank_cs",
                   "stage3_lang_cs_bpe40_lm3", "stage4_train_cs_tiny", "stage5_transfer_cs_transfer_encoder_decoder_all",
                   "stage6_decode_cs_tiny", "stage7_score_cs_transfer_encoder_decoder_all", "stage7_results",
                   "stage8_export_cs_transfer_encoder_decoder_all"):
        assert needle in skipped, (needle, skipped)


def test_new_lm_order_builds_a_new_lm_and_keeps_the_bpe_model(mission):
    recipe = mission["tree"] / "egs/commonvoice/ASR"
    bpe = recipe / "data/lang/cs_bpe40/bpe.model"
    before = (bpe.read_bytes(), bpe.stat().st_mtime_ns)
    r = run_recipe(mission["tree"], "commonvoice", *mission["cs_opts"], "--stage", 3, "--stop-stage", 3,
                   "--lm-order", 2)
    assert "run 'stage3_lang_cs_bpe40_lm2'" in r.stderr
    assert _json(recipe / "data/lang/cs_bpe40/lm_2gram/lm.json")["lm_order"] == 2
    assert (recipe / "data/lang/cs_bpe40/lm_3gram/HLG.fst").is_file()
    assert (bpe.read_bytes(), bpe.stat().st_mtime_ns) == before


def test_stage_5_without_a_trained_source_is_a_clear_error(mission, tmp_path):
    import subprocess

    cmd = ["bash", str(mission["tree"] / "egs/commonvoice/ASR/run.sh"), *map(str, mission["cs_opts"]),
           "--stage", "5", "--stop-stage", "5", "--source-exp", str(tmp_path / "nothing")]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 1
    assert f"--source-exp {tmp_path / 'nothing'} holds no trained model" in p.stderr
    assert "Traceback" not in p.stderr


def test_changed_grid_options_stop_with_the_reason_and_force_retrains(mission):
    """A stage-5 model asked for again with another training option (speed perturbation) does not
    resume the old model: the step says why it runs again, the trainer stops with the options that
    differ (one line, no traceback); --force true trains it afresh with the new option, and the
    perturbed copies count in the budget (fewer epochs)."""
    import subprocess

    opts = [str(o) for o in mission["cs_opts"]]
    opts[opts.index("--grid-opts") + 1] = "--budget-minutes 0.3 --speed-perturb true"
    recipe = mission["tree"] / "egs/commonvoice/ASR"
    cmd = ["bash", str(recipe / "run.sh"), *opts, "--stage", "5", "--stop-stage", "5"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 1
    out = p.stdout + p.stderr    # the step's own output goes to stdout (and its log)
    assert "'stage5_transfer_cs_transfer_encoder_decoder_all' runs again: options" in out
    assert "was trained with other training options (speed_perturb: False -> True)" in out
    assert "--force true" in out and "Traceback" not in out
    exp = recipe / "exp/cs_transfer_encoder_decoder_all"
    assert sorted(x.name for x in exp.glob("epoch-*.pt")) == ["epoch-1.pt", "epoch-2.pt"]  # nothing lost
    r = run_recipe(mission["tree"], "commonvoice", *opts, "--stage", 5, "--stop-stage", 5, "--force", "true",
                   timeout=600)
    assert "removing exp/cs_transfer_encoder_decoder_all (--force true)" in r.stderr
    params = _json(exp / "params.json")
    assert params["train_conf"]["speed_perturb"] is True and params["resumed_from"] is None
    # 0.3 min of budget over ~0.2 min of train and its two copies: 1 epoch
    assert sorted(x.name for x in exp.glob("epoch-*.pt")) == ["epoch-1.pt"]
