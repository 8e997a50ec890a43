"""End to end: train a tiny English source model a few steps, graft it onto a tiny Czech
target with steps/transfer.py (dry run, fine-tuning with freezing, L2-SP, shared-piece rows
and source mixing, resume), decode greedily, and check the errors given before training.

Usage:
    .venv/bin/python -m pytest -q tests/test_transfer_e2e.py

Data: the English set of tests/tiny_asr.py, and a Czech set made here the same way
(espeak-ng -v cs, sox to 16 kHz, lhotse Fbank, graft.lang.bpe with `<blk>` = 0).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_asr import tiny_asr_session  # noqa: E402

from graft.utils.errors import GraftError, MissingStageError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CZECH = [
    "kočka sedí na okně", "pes běží po louce", "dnes je krásný den", "máme rádi čaj",
    "otevři dveře prosím", "vlak jede pozdě", "ryba plave v řece", "slunce svítí",
    "na stole je hrnek", "děti si hrají venku", "v noci je zima", "čtu dobrou knihu",
]
NUM_TRAIN = 9


def _build_czech(root: Path) -> dict[str, Path]:
    from lhotse import (CutSet, Fbank, FbankConfig, LilcomChunkyWriter, Recording, RecordingSet,
                        SupervisionSegment, SupervisionSet)

    from graft.lang.bpe import train_bpe, write_tokens

    fbank_dir = root / "data" / "fbank" / "cs"
    lang_dir = root / "data" / "lang" / "cs_bpe40"
    (root / "wav").mkdir(parents=True)
    fbank_dir.mkdir(parents=True)
    splits: dict[str, list] = {"train": [], "dev": []}
    for i, text in enumerate(CZECH):
        utt = f"cs-{i:03d}"
        raw, wav = root / "wav" / f"{utt}.22k.wav", root / "wav" / f"{utt}.wav"
        subprocess.run(["espeak-ng", "-v", "cs", "-s", str(150 + 10 * (i % 3)), "-w", str(raw)],
                       input=text.encode(), check=True, capture_output=True)
        subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", str(wav)], check=True, capture_output=True)
        rec = Recording.from_file(wav, recording_id=utt)
        sup = SupervisionSegment(id=utt, recording_id=utt, start=0.0, duration=rec.duration, text=text,
                                 language="cs")
        splits["train" if i < NUM_TRAIN else "dev"].append((rec, sup))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for split, items in splits.items():
            cuts = CutSet.from_manifests(recordings=RecordingSet.from_recordings(r for r, _ in items),
                                         supervisions=SupervisionSet.from_segments(s for _, s in items))
            cuts = cuts.compute_and_store_features(
                extractor=Fbank(FbankConfig(num_mel_bins=80)), storage_path=fbank_dir / f"feats_{split}",
                storage_type=LilcomChunkyWriter, num_jobs=1)
            cuts.to_file(fbank_dir / f"cuts_{split}.jsonl.gz")
    finally:
        torch.set_num_threads(threads)
    sp = train_bpe([s.text for _, s in splits["train"]], lang_dir / "bpe.model", vocab_size=40)
    write_tokens(sp, lang_dir / "tokens.txt")
    return {"train": fbank_dir / "cuts_train.jsonl.gz", "dev": fbank_dir / "cuts_dev.jsonl.gz", "lang": lang_dir}


TRAIN_OPTS = ["--num-epochs", "1", "--max-duration", "12", "--spec-augment", "false",
              "--warm-steps", "2", "--save-every-n", "0", "--log-interval", "2", "--num-buckets", "2",
              "--ctc-weight", "0.2", "--base-lr", "0.003"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The English tiny set, a 1-epoch tiny English source model, and the Czech tiny set."""
    from graft.train.options import load_train_conf
    from graft.train.run import run_training

    en = tiny_asr_session(tmp_path_factory)
    root = tmp_path_factory.mktemp("transfer_e2e")
    cs = _build_czech(root / "cs")
    src_exp = root / "exp" / "en_tiny"
    result = run_training(load_train_conf(
        cuts_train=str(en.cuts_train), lang_dir=str(en.lang_dir), exp_dir=str(src_exp), model_conf="tiny",
        num_epochs=1, max_duration=12.0, spec_augment=False, warm_steps=2, save_every_n=0, log_interval=2,
        num_buckets=2, ctc_weight=0.2, dropout=0.0))
    assert result.finished
    written = yaml.safe_load((src_exp / "model.yaml").read_text())   # --dropout 0 over tiny's 0.1
    assert written["dropout"] == 0.0 and written["ctc_dropout"] == 0.0
    assert (src_exp / "lang" / "tokens.txt").read_text() == (en.lang_dir / "tokens.txt").read_text()
    assert (src_exp / "model.yaml").is_file()
    return {"en": en, "cs": cs, "root": root, "src_exp": src_exp}


def _argv(data, exp: Path, *extra: str) -> list[str]:
    # no --source-lang-dir: the source model brings its own (exp/en_tiny/lang/, checked by fingerprint)
    return ["--source-exp", str(data["src_exp"]),
            "--lang-dir", str(data["cs"]["lang"]), "--cuts-train", str(data["cs"]["train"]),
            "--cuts-dev", str(data["cs"]["dev"]), "--exp-dir", str(exp), *TRAIN_OPTS, *extra]


def _transfer_main():
    """steps/transfer.py's main(argv), loaded from its file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("steps_transfer", ROOT / "steps" / "transfer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_dry_run_prints_the_plan(data, capsys):
    exp = data["root"] / "exp" / "dry"
    _transfer_main()(_argv(data, exp, "--transfer-conf", "encoder_decoder", "--freeze", "encoder.embed",
                           "--freeze-steps", "3", "--l2sp", "1e-3", "--mix-source-cuts",
                           str(data["en"].cuts_train), "--mix-source-weight", "0.2",
                           "--mix-max-unk-ratio", "0.5", "--dry-run"))
    out = capsys.readouterr().out
    for needle in ("encoder.embed", "encoder.layers.1", "decoder.embedding", "copied:", "shared rows:",
                   "re-initialized:", "frozen:", "(first 3 steps)", "target pieces are shared",
                   "L2-SP:           coef 0.001", "source mixing:", "dry run"):
        assert needle in out, needle
    assert not exp.exists()


def test_transfer_finetune_resume_and_decode(data):
    from graft.decode.run import DecodeOptions, decode_set
    from graft.lang.langdir import load_lang_dir
    from graft.train.checkpoint import load_model_for_decoding, read_checkpoint

    main = _transfer_main()
    exp = data["root"] / "exp" / "cs_transfer"
    argv = _argv(data, exp, "--transfer-conf", "encoder_decoder", "--freeze", "encoder.embed",
                 "--freeze-steps", "100", "--l2sp", "1e-3", "--layer-decay", "0.8", "--mix-source-cuts", str(data["en"].cuts_train),
                 "--mix-source-weight", "0.2", "--mix-max-unk-ratio", "0.5")
    main(argv)
    ckpt = read_checkpoint(exp / "epoch-1.pt")
    record = ckpt["extra"]["transfer"]
    assert record["rules"]["freeze"] == ["encoder.embed"] and record["rules"]["l2sp"] == 1e-3
    assert record["totals"]["shared_pieces"] > 3
    assert ckpt["lang"]["vocab_size"] == len((data["cs"]["lang"] / "tokens.txt").read_text().splitlines())
    assert (exp / "transfer.json").is_file() and (exp / "transfer_plan.txt").is_file()
    assert yaml.safe_load((exp / "model.yaml").read_text())["dropout"] == 0.0    # the source's conf
    assert (exp / "cuts_train_mix.jsonl.gz").is_file() and record["mix"]["num_source"] >= 1
    assert ckpt["progress"]["step"] > 0

    # frozen for the first 100 steps (all of this run): still the source weights; the rest moved
    src = read_checkpoint(data["src_exp"] / "epoch-1.pt")["model"]
    for k, v in ckpt["model"].items():
        if k.startswith("encoder.embed."):
            assert torch.equal(v, src[k]), k
    assert not torch.equal(ckpt["model"]["encoder.layers.1.ff.net.0.weight"], src["encoder.layers.1.ff.net.0.weight"])

    # a second run resumes (here: nothing left to do); other rules are refused
    main(argv)
    with pytest.raises(GraftError, match="other transfer rules"):
        main(_argv(data, exp, "--transfer-conf", "encoder", "--num-epochs", "2"))

    # greedy decoding of the Czech dev set with the fine-tuned model (graft.decode.run)
    model, info = load_model_for_decoding(exp, epoch=1)
    decode_set(model, data["cs"]["dev"], load_lang_dir(data["cs"]["lang"]), None, exp / "decode", "dev",
               ["greedy"], DecodeOptions(num_jobs=1), info)
    # a lang dir of the same size with two pieces swapped: refused, naming both fingerprints
    swapped = _swapped_lang_dir(data["cs"]["lang"], data["root"] / "cs_swapped")
    with pytest.raises(GraftError, match=r"token fingerprint [0-9a-f]{16}\) is not the lang dir .* \(fingerprint [0-9a-f]{16}\)"):
        decode_set(model, data["cs"]["dev"], load_lang_dir(swapped), None, exp / "decode2", "dev",
                   ["greedy"], DecodeOptions(num_jobs=1), info)
    assert not (exp / "decode2").exists()
    # the English lang dir has other pieces: refused, naming both fingerprints
    with pytest.raises(GraftError, match=r"token fingerprint [0-9a-f]{16}\) is not the lang dir .* \(fingerprint [0-9a-f]{16}\)"):
        decode_set(model, data["cs"]["dev"], load_lang_dir(data["en"].lang_dir), None, exp / "decode2", "dev",
                   ["greedy"], DecodeOptions(num_jobs=1), info)
    hyp = (exp / "decode" / "greedy" / "dev" / "hyp.txt").read_text(encoding="utf-8").splitlines()
    ref = (exp / "decode" / "greedy" / "dev" / "ref.txt").read_text(encoding="utf-8").splitlines()
    assert len(hyp) == len(ref) == len(CZECH) - NUM_TRAIN
    assert [h.split()[0] for h in hyp] == [r.split()[0] for r in ref]


def _swapped_lang_dir(src: Path, dest: Path) -> Path:
    """A copy of a lang dir whose tokens.txt has the pieces of ids 5 and 6 swapped (same size)."""
    import shutil

    shutil.copytree(src, dest, dirs_exist_ok=True)
    lines = (src / "tokens.txt").read_text(encoding="utf-8").splitlines()
    (a, _), (b, _) = lines[5].split(), lines[6].split()
    lines[5], lines[6] = f"{b} 5", f"{a} 6"
    (dest / "tokens.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (dest / "lang.json").unlink(missing_ok=True)
    return dest


def test_same_size_other_pieces_refused_by_transfer(data, tmp_path):
    swapped = _swapped_lang_dir(data["en"].lang_dir, tmp_path / "en_swapped")
    with pytest.raises(GraftError, match=r"is not the lang dir the model in .* was trained with \(fingerprint"):
        _transfer_main()(_argv(data, tmp_path / "exp", "--source-lang-dir", str(swapped)))
    assert not (tmp_path / "exp").exists()


def test_frozen_for_the_whole_run(data):
    from graft.train.checkpoint import read_checkpoint

    exp = data["root"] / "exp" / "cs_frozen"
    _transfer_main()(_argv(data, exp, "--transfer-conf", "encoder_frozen", "--dropout", "0.25"))
    written = yaml.safe_load((exp / "model.yaml").read_text())      # the target's own dropout
    assert written["dropout"] == 0.25 and written["ctc_dropout"] == 0.25
    ckpt = read_checkpoint(exp / "epoch-1.pt")
    src = read_checkpoint(data["src_exp"] / "epoch-1.pt")["model"]
    frozen = [k for k in ckpt["model"] if k.startswith(("encoder.embed.", "encoder.layers."))]
    assert frozen and all(torch.equal(ckpt["model"][k], src[k]) for k in frozen)
    assert not torch.equal(ckpt["model"]["decoder.conv.weight"], src["decoder.conv.weight"])


def test_errors_before_training(data, tmp_path):
    main = _transfer_main()
    exp = tmp_path / "exp"
    with pytest.raises(GraftError, match=r"copy pattern 'encoder\.layers\.7\.\*' matches no parameter"):
        main(_argv(data, exp, "--copy", "encoder.layers.7.*"))
    with pytest.raises(GraftError, match="freeze every parameter"):
        main(_argv(data, exp, "--copy", "encoder.*", "--freeze", "*", "--freeze-steps", "5"))
    other = tmp_path / "other.yaml"
    other.write_text("base: tiny\nencoder_dim: 32\nff_dim: 64\nnum_heads: 2\n")
    with pytest.raises(GraftError, match=r"encoder\.layers\.0\.self_attn\.in_proj\.weight: source \(192, 64\) "
                                         r"vs target \(96, 32\)"):
        main(_argv(data, exp, "--transfer-conf", "encoder", "--model-conf", str(other)))
    with pytest.raises(MissingStageError, match="stage 3"):
        main(_argv(data, exp, "--transfer-conf", "encoder", "--lang-dir", str(tmp_path / "cs_bpe40")))
    with pytest.raises(GraftError, match="is not the lang dir the model in .* was trained with"):
        main(_argv(data, exp, "--transfer-conf", "encoder", "--source-lang-dir", str(data["cs"]["lang"])))
    assert not exp.exists()

    # the executable: one ERROR line, exit status 1
    proc = subprocess.run([sys.executable, str(ROOT / "steps" / "transfer.py"),
                           *_argv(data, exp, "--transfer-conf", "encoder", "--lang-dir", str(tmp_path / "nope"))],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR: ")]
    assert len(errors) == 1 and "stage 3" in errors[0], proc.stderr
