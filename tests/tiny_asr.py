"""A tiny real ASR dataset for tests: espeak-ng speech, lhotse fbank cuts, a BPE lang dir.

Usage (in a test file):
    from tiny_asr import tiny_asr_session
    @pytest.fixture(scope="session")
    def tiny(tmp_path_factory):
        return tiny_asr_session(tmp_path_factory)      # built once per pytest session
    tiny.cuts_train, tiny.cuts_dev, tiny.lang_dir, tiny.vocab_size

Or directly: build_tiny_asr(Path("/tmp/tiny"), num_train=24, num_dev=6, vocab_size=64).

Layout under `root` (the recipe layout of CONVENTIONS.md, language "en"):
    wav/<id>.wav                              16 kHz mono (espeak-ng 22.05 kHz -> sox, -1 dB)
    data/fbank/en/cuts_{train,dev}.jsonl.gz   80-dim lhotse Fbank, lilcom chunky storage
    data/lang/en_bpe<V>/bpe.model, tokens.txt, lang.json   (<blk> id 0, <sos/eos> 1, <unk> 2)
A `.done` marker makes a second call with the same root return at once.
"""
from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

SENTENCES = [
    "the cat sat on the mat", "a dog ran in the park", "she sells sea shells",
    "open the door please", "the sun is hot today", "we like green tea",
    "my hat is red", "the bird can sing", "turn the light off", "he reads a book",
    "the fish swims fast", "put the cup on the table", "it is cold at night",
    "they play ball after school", "the car is very old", "i see a big tree",
    "rain falls on the roof", "the baby is asleep", "cats like warm milk",
    "the train was late again", "we walk to the shop", "the moon is bright",
    "bring me the red box", "the boat sails at dawn", "a bee sat on the rose",
    "the kettle is on", "my friend has a bike", "snow fell in the hills",
    "the door is shut", "dogs bark at night", "the lamp is on the desk",
    "she drinks hot milk", "the sky is blue", "fish live in the sea",
    "he ran down the hill", "the cake is sweet",
]
VOICES = ["en+m1", "en+f2", "en+m3", "en+f4", "en+m5"]


@dataclass
class TinyAsr:
    root: Path
    cuts_train: Path
    cuts_dev: Path
    lang_dir: Path
    vocab_size: int


def _synthesize(text: str, voice: str, speed: int, out: Path) -> None:
    raw = out.with_suffix(".22k.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw)],
                   input=text.encode(), check=True, capture_output=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", str(out), "gain", "-1"],
                   check=True, capture_output=True)
    raw.unlink()


def _train_bpe(texts: list[str], lang_dir: Path, vocab_size: int) -> int:
    import sentencepiece as spm

    lang_dir.mkdir(parents=True, exist_ok=True)
    text_file = lang_dir / "train_text.txt"
    text_file.write_text("\n".join(texts) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(text_file), model_prefix=str(lang_dir / "bpe"), vocab_size=vocab_size,
        model_type="bpe", character_coverage=1.0, user_defined_symbols=["<blk>", "<sos/eos>"],
        unk_id=2, bos_id=-1, eos_id=-1, hard_vocab_limit=False, minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_file=str(lang_dir / "bpe.model"))
    size = sp.get_piece_size()
    with open(lang_dir / "tokens.txt", "w", encoding="utf-8") as f:
        for i in range(size):
            f.write(f"{sp.id_to_piece(i)} {i}\n")
    (lang_dir / "lang.json").write_text(json.dumps({"vocab_size": size, "blank_id": 0, "language": "en"}))
    return size


def build_tiny_asr(root: Path, num_train: int = 24, num_dev: int = 6, vocab_size: int = 64,
                   repeat: int = 1) -> TinyAsr:
    """Build (or reuse) the dataset under `root`; `repeat` > 1 re-voices the sentences."""
    import torch
    from lhotse import (CutSet, Fbank, FbankConfig, LilcomChunkyWriter, Recording, RecordingSet,
                        SupervisionSegment, SupervisionSet)

    root = Path(root)
    fbank_dir = root / "data" / "fbank" / "en"
    lang_dir = root / "data" / "lang" / f"en_bpe{vocab_size}"
    done = root / ".done"
    if done.exists():
        info = json.loads(done.read_text())
        return TinyAsr(root, fbank_dir / "cuts_train.jsonl.gz", fbank_dir / "cuts_dev.jsonl.gz",
                       lang_dir, info["vocab_size"])
    assert num_train + num_dev <= len(SENTENCES), "not enough sentences"
    wav_dir = root / "wav"
    wav_dir.mkdir(parents=True, exist_ok=True)
    splits: dict[str, list] = {"train": [], "dev": []}
    for r in range(repeat):
        for i, text in enumerate(SENTENCES[: num_train + num_dev]):
            split = "train" if i < num_train else "dev"
            if split == "dev" and r > 0:
                continue
            utt = f"tiny{r}-{i:03d}"
            voice = VOICES[(i + r) % len(VOICES)]
            wav = wav_dir / f"{utt}.wav"
            _synthesize(text, voice, 150 + 10 * ((i + 2 * r) % 4), wav)
            rec = Recording.from_file(wav, recording_id=utt)
            sup = SupervisionSegment(id=utt, recording_id=utt, start=0.0, duration=rec.duration,
                                     text=text, language="en", speaker=voice)
            splits[split].append((rec, sup))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fbank_dir.mkdir(parents=True, exist_ok=True)
        for split, items in splits.items():
            cuts = CutSet.from_manifests(
                recordings=RecordingSet.from_recordings(r for r, _ in items),
                supervisions=SupervisionSet.from_segments(s for _, s in items),
            )
            cuts = cuts.compute_and_store_features(
                extractor=Fbank(FbankConfig(num_mel_bins=80)), storage_path=fbank_dir / f"feats_{split}",
                storage_type=LilcomChunkyWriter, num_jobs=1,
            )
            cuts.to_file(fbank_dir / f"cuts_{split}.jsonl.gz")
    finally:
        torch.set_num_threads(threads)
    size = _train_bpe([s.text for _, s in splits["train"]], lang_dir, vocab_size)
    done.write_text(json.dumps({"vocab_size": size}))
    return TinyAsr(root, fbank_dir / "cuts_train.jsonl.gz", fbank_dir / "cuts_dev.jsonl.gz", lang_dir, size)


def tiny_asr_session(tmp_path_factory) -> TinyAsr:
    """One dataset per pytest session, shared by every test file that asks for it."""
    return build_tiny_asr(tmp_path_factory.getbasetemp() / "tiny_asr")


def two_language_cuts(tiny: TinyAsr, out_dir: Path, split: str = "train") -> Path:
    """The tiny corpus's cuts of SPLIT with the female voices' supervisions relabelled as a
    second language "xx" (for the multilingual options: --meta-block, --adversarial language)."""
    from lhotse import CutSet, load_manifest

    src = tiny.cuts_train if split == "train" else tiny.cuts_dev
    cuts = []
    for cut in load_manifest(src):
        for sup in cut.supervisions:
            if "+f" in sup.speaker:
                sup.language = "xx"
        cuts.append(cut)
    out = Path(out_dir) / f"cuts_{split}_two_languages.jsonl.gz"
    out.parent.mkdir(parents=True, exist_ok=True)
    CutSet.from_cuts(cuts).to_file(out)
    return out
