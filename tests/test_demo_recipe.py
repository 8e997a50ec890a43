"""End to end: the demo recipe's stages 0-3 on a tiny bilingual corpus, in a throw-away tree.

Checks what each stage leaves: the folder corpus, validated manifests with nested Czech
subsets, fbank features, a lang dir whose HLG exists, and that a second run skips every step.
"""
from __future__ import annotations

import json

from lhotse import load_manifest

from corpus_fixtures import graft_tree, run_recipe

TINY = ["--en-train-minutes", "1.5", "--en-dev-minutes", "0.4", "--en-test-minutes", "0.4",
        "--cs-train-minutes", "1.5", "--cs-dev-minutes", "0.4", "--cs-test-minutes", "0.4",
        "--en-unseen-minutes", "0.4", "--cs-unseen-minutes", "0.4", "--extra-lm-text", "none",
        "--cs-train-subsets", "0.5 1", "--vocab-size", "60", "--stop-stage", "3"]
EN = ["--source-langs", "en"]   # the English-only source (the default, "en pl", is below and in test_multilingual_source.py)
PL = ["--pl-train-minutes", "0.8", "--pl-dev-minutes", "0.3", "--pl-test-minutes", "0.3", "--pl-train-reads", "1"]


def test_demo_stages_0_to_3(tmp_path, monkeypatch):
    root = graft_tree(tmp_path / "graft", ["demo"])
    run_recipe(root, "demo", *EN, *TINY, timeout=600)
    asr = root / "egs/demo/ASR"
    monkeypatch.chdir(asr)  # manifests hold paths relative to the recipe folder
    for lang in ("en", "cs"):
        corpus = json.loads((asr / f"data/corpus/{lang}/report.json").read_text())
        assert len(corpus["speakers"]) >= 6
        train = load_manifest(asr / f"data/fbank/{lang}/cuts_train.jsonl.gz")
        dev = load_manifest(asr / f"data/fbank/{lang}/cuts_dev.jsonl.gz")
        assert len(train) >= 15 and len(dev) >= 3
        assert not {c.supervisions[0].text for c in train} & {c.supervisions[0].text for c in dev}
        feats = train[0].load_features()
        assert feats.shape[1] == 80
        assert train[0].supervisions[0].language == lang
        lang_dir = asr / f"data/lang/{lang}_bpe60"
        assert (lang_dir / "lm_3gram/HLG.fst").stat().st_size > 0
        assert json.loads((lang_dir / "lang.json").read_text())["vocab_size"] == 60
        coverage = json.loads((lang_dir / "lm_3gram/coverage.json").read_text())
        assert 0 < coverage["dev"]["word_coverage"] <= 1
        # the voice-disjoint split went through stages 1-3: features and its coverage
        unseen = load_manifest(asr / f"data/fbank/{lang}/cuts_test_unseen.jsonl.gz")
        assert len(unseen) >= 2 and 0 < coverage["test_unseen"]["word_coverage"] <= 1
        assert not {s.speaker for c in unseen for s in c.supervisions} & \
            {s.speaker for c in [*train, *dev] for s in c.supervisions}
        assert corpus["held_out_speakers"] and corpus["utterances"]["test_unseen"] == len(unseen)
    small = set(load_manifest(asr / "data/fbank/cs/cuts_train_0.5m.jsonl.gz").ids)
    large = set(load_manifest(asr / "data/fbank/cs/cuts_train_1m.jsonl.gz").ids)
    assert small and small < large
    again = run_recipe(root, "demo", *EN, *TINY)
    assert again.stderr.count("skip '") == 1 + 2 + 2 + 2  # stage 0 once, stages 1-3 per language
    assert "run '" not in again.stderr
    # stage 7 before any model exists: one clear line, no traceback
    import subprocess

    p = subprocess.run(["bash", str(asr / "run.sh"), *EN, *TINY[:-2], "--stage", "7", "--stop-stage", "7"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 1 and "ERROR: stage 7: no decoded model to score (run stages 4-6 first)" in p.stderr
    assert "Traceback" not in p.stderr


def test_demo_stages_4_to_7_with_a_tiny_model(tmp_path):
    """The demo's own stages 4-7 with its default source (English + Polish): the source model, the
    Czech grid from it (one size, transfer and scratch, both with the grid's speaker adversary),
    decoding and scoring of all three, RESULTS.md with the source's WER per language, and the
    stage times."""
    import re

    root = graft_tree(tmp_path / "graft", ["demo"])
    data = [o for o in TINY if o not in ("--stop-stage", "3")] + PL
    run_recipe(root, "demo", *data, "--stop-stage", 3, timeout=600)
    opts = [*data, "--model-conf", "tiny", "--num-epochs", 2, "--max-duration", 20, "--train-opts",
            "--ctc-weight 0.2 --warm-steps 5 --spec-augment false --num-buckets 2",
            "--grid-opts", "--sizes 0.5m --budget-minutes 1",
            # decoded at w0 = 1.5 (beams 12/1.5, 6/1.5): the tiny untrained Czech models spread their
            # posteriors, and at the default w0 their lattices on the Czech HLG took 36-115 s each
            "--lm-weights", "1.0 1.5 2.0"]
    r = run_recipe(root, "demo", *opts, "--stage", 4, timeout=900)
    asr = root / "egs/demo/ASR"
    for exp in ("en_pl_tiny", "cs_scratch_0.5m", "cs_transfer_encoder_decoder_0.5m"):
        assert list((asr / "exp" / exp).glob("decode_epoch*_avg*/ctc-hlg/test/scoring/best_wer")), exp
    # the scratch baseline has the source's architecture; the transfer starts from its last epoch
    assert (asr / "exp/cs_scratch_0.5m/model.yaml").read_text() == (asr / "exp/en_pl_tiny/model.yaml").read_text()
    assert "--source-epoch 2 --source-avg 2" in r.stderr
    assert "--lr-epochs 1.56" in (asr / "exp/log/stage4_train_en_pl_tiny.log").read_text()  # the en+pl default
    for step in ("stage4_train_cs_scratch_0.5m", "stage5_transfer_cs_transfer_encoder_decoder_0.5m"):  # grid/demo.yaml
        assert "domain-adversarial training (speaker, per frame)" in (asr / f"exp/log/{step}.log").read_text(), step
    results = (asr / "RESULTS.md").read_text()
    for row in (r"\| en_pl_tiny \| - \| greedy \|", r"\| cs_transfer_encoder_decoder_0.5m \| [0-9.]+ \| ctc-hlg \|",
                r"\| cs_scratch_0.5m \| [0-9.]+ \| ctc-hlg \|",
                # the source's test_unseen: English's held-out voices (Polish has none by default)
                r"\| en_pl_tiny \| - \| greedy \|( [^|]+ \|){7} [0-9.]+ \| [0-9.]+x \|",
                r"\| en_pl_tiny \| greedy \| en \| [0-9.]+ \| \d+ \| [0-9.]+ \| \d+ \| [0-9.]+ \| [1-9]\d* \| [0-9.]+x \|",
                r"\| en_pl_tiny \| ctc-hlg \| pl \| [0-9.]+ \| \d+ \| [0-9.]+ \| \d+ \| - \| 0 \| - \|"):
        assert re.search(row, results), row
    combined = json.loads((asr / "data/fbank/en_pl/report.json").read_text())
    assert list(combined["splits"]["test_unseen"]) == ["en"]
    assert "Training curves of the source model (en pl)" in results
    assert not re.search(r"\| cs_\S+ \| \w+ \| (cs|en|pl) \|", results)   # Czech models: one language, no split
    assert (root / "bench/results/demo_stage_times.md").is_file()
