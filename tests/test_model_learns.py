"""The encoder must learn to use its input: a tiny model memorizes two utterances of equal
length (so position and length cannot tell them apart) with CTC, on audio made here.

A model whose encoder ignores its input (what the demo's English run showed: outputs the same
for real, constant and shuffled features) gives both utterances the same output and fails.
"""
from __future__ import annotations

import subprocess

import pytest
import torch
from kaldialign import edit_distance
from lhotse import Fbank, FbankConfig, Recording

from graft.model.build import build_model, load_model_conf

TEXTS = ["one two three four five six seven", "green apples fall down from tall trees"]


def _features(tmp_path) -> list[torch.Tensor]:
    out = []
    for i, text in enumerate(TEXTS):
        raw, wav = tmp_path / f"{i}.raw.wav", tmp_path / f"{i}.wav"
        subprocess.run(["espeak-ng", "-v", "en", "-w", str(raw)], input=text.encode(), check=True)
        subprocess.run(["sox", str(raw), "-r", "16000", str(wav)], check=True)
        rec = Recording.from_file(wav)
        feats = Fbank(FbankConfig(num_filters=80)).extract(rec.load_audio(), 16000)
        out.append(torch.from_numpy(feats))
    return out


@pytest.mark.parametrize("input_norm", ["utterance", "none"])
def test_tiny_model_memorizes_two_equal_length_utterances(tmp_path, input_norm):
    torch.manual_seed(0)
    feats = _features(tmp_path)
    t = min(f.shape[0] for f in feats)
    x, lens = torch.stack([f[:t] for f in feats]), torch.tensor([t, t])
    # distinct token sequences (ids 1..V-1), short enough for the cropped audio
    targets = torch.tensor([[3, 5, 7, 9, 11, 13], [14, 12, 10, 8, 6, 4]])
    conf = {**load_model_conf("tiny"), "input_norm": input_norm}
    model = build_model(conf, vocab_size=16)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(250):
        enc, enc_lens = model.encoder(x, lens)
        loss = torch.nn.functional.ctc_loss(model.ctc_output(enc).transpose(0, 1), targets, enc_lens,
                                            torch.tensor([6, 6]), reduction="sum") / enc_lens.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        enc, _ = model.encoder(x, lens)
        best = model.ctc_output(enc).argmax(-1)
    hyps = [[int(k) for k in b.unique_consecutive() if k != 0] for b in best]
    refs = targets.tolist()
    # A model that ignores its input gives both the same output, and its loss cannot go much
    # below the mixture of the two targets; one that uses it tells them apart.
    assert loss.item() < 0.06
    for i, j in ((0, 1), (1, 0)):
        own = edit_distance(refs[i], hyps[i])["total"]
        other = edit_distance(refs[j], hyps[i])["total"]
        assert own < other and own <= 2, (hyps, refs)
