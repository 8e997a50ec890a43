"""ONNX export (steps/export_onnx.py, graft.export): files sherpa-onnx loads, equal to torch.

A tiny model is trained for a few hundred steps on tests/tiny_asr.py's data, with a 3-gram
HLG for its lang dir. So that the equality checks decide many tokens (a barely trained model
says almost only blank), the fixture lowers the joiner's blank bias by 7 and gives the CTC head
random weights centred on the encoder's mean output (the encoder of a barely trained model
varies little from frame to frame): a valid model of the same shape that emits many tokens.

Usage:
    .venv/bin/python -m pytest -q tests/test_export.py
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from tiny_asr import SENTENCES, tiny_asr_session

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
CTC_SCALE = 0.3


@dataclass
class Exported:
    exp: Path          # the (modified) training exp dir
    lang: Path         # its lang dir, with lm_3gram/ (HLG)
    export: Path       # the export folder
    wavs: list[Path]   # every tiny utterance (train + dev)


def _modify(src: Path, dst: Path, lang: Path, wavs: list[Path]) -> None:
    """Copy the last epoch of `src` into `dst` with the joiner's blank bias 7 lower and a random
    CTC head centred on the encoder's mean output (so its argmax changes from frame to frame)."""
    from graft.export.audio import load_audio
    from graft.export.recognize import TorchBackend

    backend = TorchBackend(src, "ctc-greedy", lang_dir=lang)
    with torch.no_grad():
        outs = []
        for wav in wavs[:6]:
            f = backend.features(load_audio(wav))
            outs.append(backend.model.encoder(f[None], torch.tensor([f.shape[0]]))[0][0])
    enc = torch.cat(outs)
    mean, std = enc.mean(0), enc.std(0)
    dst.mkdir(parents=True, exist_ok=True)
    last = max(src.glob("epoch-*.pt"), key=lambda p: int(p.stem.split("-")[1]))
    ckpt = torch.load(last, weights_only=False)
    g = torch.Generator().manual_seed(0)
    for sd in [ckpt["model"]] + ([ckpt["model_avg"]] if ckpt.get("model_avg") else []):
        sd["joiner.output_linear.bias"][0] -= 7.0
        w = torch.randn(sd["ctc_output.1.weight"].shape, generator=g) * CTC_SCALE / std
        sd["ctc_output.1.weight"] = w.to(torch.float32)
        sd["ctc_output.1.bias"] = (-(w @ mean)).to(torch.float32)
        sd["ctc_output.1.bias"][0] += 2.0 * CTC_SCALE
    torch.save(ckpt, dst / "epoch-1.pt")
    if (src / "lang").is_dir():
        shutil.copytree(src / "lang", dst / "lang")


def build_exported(tmp_path_factory) -> Exported:
    """The exported tiny model, built once per pytest session (a marker makes reuse instant)."""
    from graft.export.bundle import export_model
    from graft.lang.prepare import prepare_lm
    from graft.train.options import load_train_conf
    from graft.train.run import run_training

    tiny = tiny_asr_session(tmp_path_factory)
    root = tmp_path_factory.getbasetemp() / "export_model"
    done = root / ".done"
    out = Exported(root / "exp", root / "lang", root / "export", sorted((tiny.root / "wav").glob("*.wav")))
    if done.exists():
        return out
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    out.lang.mkdir()
    for name in ("bpe.model", "tokens.txt", "lang.json"):
        shutil.copy2(tiny.lang_dir / name, out.lang / name)
    prepare_lm(out.lang, SENTENCES[:24], SENTENCES[24:], SENTENCES[24:30], SENTENCES[30:], lm_order=3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = run_training(load_train_conf(
            cuts_train=str(tiny.cuts_train), lang_dir=str(out.lang), exp_dir=str(root / "trained"),
            model_conf="tiny", num_epochs=15, max_duration=12.0, spec_augment=False, warm_steps=2,
            base_lr=0.01, save_every_n=0, log_interval=50, num_buckets=2, ctc_weight=0.5))
        assert result.finished
        _modify(root / "trained", out.exp, out.lang, out.wavs)
        export_model(out.exp, out.export, lang_dir=out.lang)
    finally:
        torch.set_num_threads(threads)
    done.write_text("ok")
    return out


@pytest.fixture(scope="session")
def exported(tmp_path_factory) -> Exported:
    return build_exported(tmp_path_factory)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# ---- model code that exports ---------------------------------------------------------------
def test_rel_shift_gather_equals_the_strided_view():
    from graft.model.attention import rel_shift, rel_shift_gather

    s = torch.randn(2, 3, 9, 17)
    assert torch.equal(rel_shift(s), rel_shift_gather(s))
    t = s.size(-2)
    i, j = 4, 7
    assert rel_shift(s)[0, 0, i, j] == s[0, 0, i, t - 1 - i + j]


def test_positions_for_any_length():
    from graft.model.attention import AbsPositionalEncoding, RelPositionalEncoding

    pe = RelPositionalEncoding(8)(3000)            # 2T-1 rows, offset T-1 first
    assert pe.shape == (5999, 8)
    assert torch.allclose(pe[2999], torch.tensor([0.0, 1.0] * 4))             # offset 0
    assert torch.allclose(pe[0, 0], torch.sin(torch.tensor(2999.0)))
    x = torch.zeros(1, 2500, 8)
    assert torch.allclose(AbsPositionalEncoding(8)(x)[0, 2400, :2],
                          torch.stack([torch.sin(torch.tensor(2400.0)), torch.cos(torch.tensor(2400.0))]))


def test_preset_name_is_not_shadowed_by_a_folder(tmp_path, monkeypatch):
    from graft.model.build import load_model_conf

    (tmp_path / "small").mkdir()
    monkeypatch.chdir(tmp_path)
    assert load_model_conf("small")["encoder_dim"] == 144
    (tmp_path / "mine.yaml").write_text("base: tiny\nencoder_dim: 32\nnum_heads: 4\n")
    assert load_model_conf("mine.yaml")["encoder_dim"] == 32


# ---- the export folder -----------------------------------------------------------------------
def test_export_folder_is_complete_and_matches_torch(exported):
    from graft.export.onnx_io import read_metadata
    from graft.lang.langdir import load_lang_dir

    d = exported.export
    for name in ("encoder", "decoder", "joiner", "ctc"):
        assert (d / f"{name}.onnx").is_file() and (d / f"{name}.int8.onnx").is_file()
    for name in ("tokens.txt", "bpe.model", "HLG.fst", "words.txt", "README.md", "export.json"):
        assert (d / name).is_file(), name
    info = json.loads((d / "export.json").read_text())
    lang = load_lang_dir(exported.lang)
    assert info["lang"]["fingerprint"] == lang.fingerprint and info["lang"]["vocab_size"] == lang.vocab_size
    checks = info["checks_against_torch"]
    assert max(checks["lengths_frames"]) > 6000                     # one input over 60 s
    assert all(r["ok"] for r in checks["rows"])                   # within 1e-3 + 1e-3 * |torch|
    assert max(checks["max_abs_diff"][k] for k in ("encoder", "decoder", "joiner")) < 1e-4
    assert {r["case"] for r in checks["rows"] if r["model"] == "encoder"} >= {"T=6100", "batch T=733,100"}
    assert info["int8"]["sizes_bytes"]["encoder.int8.onnx"] < info["sizes_bytes"]["encoder.onnx"]
    assert info["sherpa_onnx_load"]["checked"]
    dec = read_metadata(d / "decoder.onnx")
    assert int(dec["vocab_size"]) == lang.vocab_size and int(dec["context_size"]) == 2
    assert read_metadata(d / "encoder.int8.onnx")["model_type"] == "conformer"
    assert "steps/recognize.py" in (d / "README.md").read_text()


def test_sherpa_greedy_tokens_equal_graft_greedy(exported):
    from graft.export.audio import load_audio
    from graft.export.recognize import SherpaBackend, TorchBackend

    graft = TorchBackend(exported.exp, "greedy", lang_dir=exported.lang)
    sherpa = SherpaBackend(exported.export, "greedy")
    total = 0
    for wav in exported.wavs:
        samples = load_audio(wav)
        a, b = graft.decode(samples), sherpa.decode(samples)
        assert a.tokens == b.tokens, wav.name
        total += len(a.tokens)
    assert total > 10 * len(exported.wavs)                 # the check decided many tokens


def _min_top2_margin(backend, samples) -> float:
    feats = backend.features(samples)
    with torch.no_grad():
        enc, _ = backend.model.encoder(feats[None], torch.tensor([feats.shape[0]]))
        top2 = backend.model.ctc_output(enc)[0].topk(2, dim=-1).values
    return float((top2[:, 0] - top2[:, 1]).min())


def test_ctc_hlg_through_sherpa_gives_graft_words(exported):
    """sherpa-onnx (kaldi FasterDecoder, beam 16, 1-best) vs Graft (LatticeSimpleDecoder, beam 16,
    best path of the lattice) on the same HLG at LM weight 1. Where sherpa-onnx reaches a final
    state it gives Graft's words. Where no path reaches a final state within the beam (common
    with this model's random CTC head), sherpa-onnx returns nothing and Graft the best partial
    path: that is the one difference, by design of each."""
    from graft.export.audio import load_audio
    from graft.export.recognize import SherpaBackend, TorchBackend, words_with_times

    graft = TorchBackend(exported.exp, "ctc-hlg", lang_dir=exported.lang)
    sherpa = SherpaBackend(exported.export, "ctc-hlg")
    greedy_g = TorchBackend(exported.exp, "ctc-greedy", lang_dir=exported.lang)
    greedy_s = SherpaBackend(exported.export, "ctc-greedy")
    compared = 0
    for wav in exported.wavs:
        samples = load_audio(wav)
        if greedy_g.decode(samples).tokens != greedy_s.decode(samples).tokens:
            # allowed only at a near-tie of torch's top two log-probs (onnxruntime's float
            # kernels differ in the last bits; this random CTC head is fairly flat)
            assert _min_top2_margin(greedy_g, samples) < 1e-3, wav.name
        s_words = [w.word for w in words_with_times(sherpa.decode(samples), sherpa.id2token, 0.04)]
        if s_words:
            assert graft.decode(samples).words == s_words, wav.name
            compared += 1
    assert compared >= 3


def test_a_90_second_input_exports_and_decodes(exported):
    from graft.export.audio import load_audio
    from graft.export.recognize import SherpaBackend, TorchBackend

    pieces, total = [], 0
    while total < 90 * 16000:
        for wav in exported.wavs:
            pieces.append(load_audio(wav))
            total += len(pieces[-1])
    samples = np.concatenate(pieces)[: 90 * 16000]
    a = TorchBackend(exported.exp, "greedy", lang_dir=exported.lang).decode(samples)
    b = SherpaBackend(exported.export, "greedy").decode(samples)
    assert a.tokens == b.tokens and len(a.tokens) > 500
    assert max(b.times) > 85.0                                  # tokens all along the 90 s


def test_int8_folder_decodes(exported):
    from graft.export.audio import load_audio
    from graft.export.recognize import SherpaBackend

    hyp = SherpaBackend(exported.export, "greedy", int8=True).decode(load_audio(exported.wavs[0]))
    assert all(isinstance(t, int) for t in hyp.tokens)


def test_export_errors_name_the_problem(exported, tmp_path):
    from graft.export.bundle import export_model
    from graft.utils.errors import GraftError

    other = tmp_path / "other_lang"
    other.mkdir()
    lines = (exported.lang / "tokens.txt").read_text().splitlines()
    a, b = lines[5].split()[0], lines[6].split()[0]
    lines[5], lines[6] = f"{b} 5", f"{a} 6"                      # same size, other meaning
    (other / "tokens.txt").write_text("\n".join(lines) + "\n")
    ckpt = torch.load(exported.exp / "epoch-1.pt", weights_only=False)
    if ckpt["lang"].get("fingerprint"):
        with pytest.raises(GraftError, match="fingerprint"):
            export_model(exported.exp, tmp_path / "out", lang_dir=other)
    proc = subprocess.run([PY, str(ROOT / "steps/export_onnx.py"), "--exp-dir", str(tmp_path / "nope")],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1 and proc.stderr.startswith("ERROR:") and "Traceback" not in proc.stderr
