"""Bad inputs and faults (issue 12): each case runs the command a user runs and checks the
message (what, where, what to do), the exit code, that no traceback reaches the user, and what
is left on disk.

Usage:
    .venv/bin/python -m pytest tests/test_faults.py -q

A full or read-only disk is a small tmpfs mounted in a private mount namespace
(`unshare -rm`); those tests are skipped where unprivileged namespaces are not allowed.
"""
from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from corpus_fixtures import graft_tree, speak
from tiny_asr import tiny_asr_session

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    return tiny_asr_session(tmp_path_factory)


def run(cmd: list, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=timeout)


def error_line(p: subprocess.CompletedProcess, *needles: str, code: int = 1) -> str:
    """The ERROR line of a failed step, checked: exit code, no traceback, every needle in it."""
    assert p.returncode == code, f"exit {p.returncode}\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("ERROR:")]
    assert len(lines) == 1, p.stderr[-3000:]
    for n in needles:
        assert n in lines[0], f"{n!r} not in {lines[0]!r}"
    return lines[0]


def have_unshare() -> bool:
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs tmpfs /mnt 2>/dev/null || "
                           "mount -t tmpfs tmpfs /tmp"], capture_output=True).returncode == 0


needs_unshare = pytest.mark.skipif(not have_unshare(), reason="needs unshare -rm (a private tmpfs)")


def in_namespace(script: str, cwd: Path, timeout: float = 300) -> None:
    """Run a shell script in a private user+mount namespace (its mounts vanish with it)."""
    p = subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=cwd, env=ENV, capture_output=True,
                       text=True, timeout=timeout)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]


# ---- stage 0: the transcript table ---------------------------------------------------------

CS_ROWS = [("u0", "Příliš žluťoučký kůň úpěl ďábelské ódy."), ("u1", "Dobrý den, jak se máte?"),
           ("u2", "Kočka spí na okně."), ("u3", "Řeka teče pomalu."), ("u4", "Venku dnes prší."),
           ("u5", "Babička peče koláč.")]


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("audio")
    for uid, _ in CS_ROWS:
        speak("hello there", d / f"{uid}.wav")
    return d


def write_table(path: Path, encoding: str) -> Path:
    text = "id\ttext\tspeaker\n" + "".join(f"{u}\t{t}\tspk{i % 2}\n" for i, (u, t) in enumerate(CS_ROWS))
    path.write_bytes(text.encode(encoding))
    return path


def download(audio: Path, table: Path | str, dl_dir: Path, *extra: str, cwd: Path | None = None):
    return run([PY, ROOT / "local/folder.py", "download", "--dl-dir", dl_dir, "--audio-dir", audio,
                "--transcripts", table, "--language", "cs", "--dev-fraction", "0.2",
                "--test-fraction", "0.2", *extra], cwd=cwd)


def test_table_not_utf8_names_file_line_byte_and_encoding_reads_it(tmp_path, audio_dir):
    table = write_table(tmp_path / "text.tsv", "cp1250")
    p = download(audio_dir, table, tmp_path / "corpus")
    line = error_line(p, f"{table}:2:", "byte 0x", "--encoding cp1250", "iconv")
    bad = "Příliš".encode("cp1250")[1]                     # ř in cp1250, invalid as UTF-8
    assert f"byte 0x{bad:02x} at column 5" in line
    assert not (tmp_path / "corpus").exists()
    p = download(audio_dir, table, tmp_path / "corpus", "--encoding", "cp1250")
    assert p.returncode == 0, p.stderr[-3000:]
    tsv = (tmp_path / "corpus/cs/transcripts.tsv").read_text(encoding="utf-8")
    assert "příliš žluťoučký kůň úpěl ďábelské ódy" in tsv
    # a spreadsheet's "Unicode text" (UTF-16), and an encoding name Python does not know
    from graft.data.adapter import read_table
    from graft.utils.errors import GraftError

    utf16 = write_table(tmp_path / "u16.tsv", "utf-16")
    with pytest.raises(GraftError, match=r"u16\.tsv: the file is UTF-16 .* --encoding utf-16"):
        read_table(utf16)
    assert read_table(utf16, "utf-16")[0]["text"] == CS_ROWS[0][1]
    with pytest.raises(GraftError, match="--encoding 'klingon' is not an encoding"):
        read_table(table, "klingon")


def test_relative_paths_are_shown_resolved(tmp_path, audio_dir):
    recipe = tmp_path / "egs/mine/ASR"
    recipe.mkdir(parents=True)
    p = download(audio_dir, "data/text.tsv", Path("data/corpus"), cwd=recipe)
    error_line(p, f"{recipe}/data/text.tsv", "--transcripts data/text.tsv", f"resolved from {recipe}")
    from graft.data.adapter import folder_utterances
    from graft.utils.errors import GraftError

    write_table(tmp_path / "t.tsv", "utf-8")
    with contextlib.chdir(recipe), pytest.raises(GraftError) as info:
        folder_utterances(Path("wav"), tmp_path / "t.tsv", "cs")
    assert str(info.value) == f"audio folder not found: {recipe}/wav (--audio-dir wav, resolved from {recipe})"


def test_stereo_audio_is_downmixed_to_mono_and_counted(tmp_path, audio_dir):
    audio = tmp_path / "audio"
    shutil.copytree(audio_dir, audio)
    left, rate = sf.read(audio / "u2.wav", dtype="float32")
    sf.write(audio / "u2.wav", np.stack([left, 0.5 * left], axis=1), rate, subtype="PCM_16")
    table = write_table(tmp_path / "text.tsv", "utf-8")
    assert download(audio, table, tmp_path / "corpus").returncode == 0
    p = run([PY, ROOT / "local/folder.py", "prepare", "--dl-dir", tmp_path / "corpus", "--language", "cs",
             "--out-dir", tmp_path / "man"])
    assert p.returncode == 0, p.stderr[-3000:]
    report = json.loads((tmp_path / "man/report.json").read_text())
    assert report["downmixed"] == 1 and report["resampled"] == 0
    from lhotse import load_manifest

    cuts = {c.id: c for split in ("train", "dev", "test")
            for c in load_manifest(tmp_path / f"man/cuts_{split}.jsonl.gz")}
    assert all(c.num_channels == 1 for c in cuts.values())
    samples = cuts["u2"].load_audio()
    assert samples.shape[0] == 1
    np.testing.assert_allclose(samples[0], 0.75 * left, atol=2e-4)


# ---- stage 2: features ---------------------------------------------------------------------

def stage1_cuts(tiny, work: Path) -> Path:
    from lhotse import load_manifest

    (work / "man").mkdir(parents=True, exist_ok=True)
    load_manifest(tiny.cuts_train).drop_features().to_file(work / "man/cuts_train.jsonl.gz")
    return work


def fbank(work: Path, jobs: int = 2, chunk: int = 2, **kw) -> list:
    return [PY, ROOT / "steps/compute_fbank.py", "--manifest-dir", "man", "--out-dir", "fb",
            "--splits", "train", "--jobs", jobs, "--chunk-size", chunk]


def fbank_here(work: Path, splits: tuple[str, ...] = ("train",), chunk: int = 8) -> None:
    """Stage 2 in this process (set-up for a test, not the command under test)."""
    from graft.data.features import compute_fbank_for_split

    threads = torch.get_num_threads()
    try:
        with contextlib.chdir(work):
            for split in splits:
                compute_fbank_for_split(f"man/cuts_{split}.jsonl.gz", f"fb/cuts_{split}.jsonl.gz",
                                        chunk_size=chunk)
    finally:
        torch.set_num_threads(threads)  # the worker function sets one thread


def children(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is `pid`."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(d.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def workers_of(proc: subprocess.Popen, n: int, timeout: float = 60) -> list[int]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = [c for c in children(proc.pid)
                 if "spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes().decode(errors="replace")]
        if len(found) >= n:
            return found
        assert proc.poll() is None, "the stage ended before its workers were seen"
        time.sleep(0.02)
    raise AssertionError("no feature workers appeared")


def started(pid: int) -> bool:
    """A spawned worker past its start-up: it has rebuilt the pool's queues and imported torch."""
    try:
        return "libtorch" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def test_fbank_dead_worker_is_a_clear_error_and_rerun_resumes(tmp_path, tiny):
    """A worker killed while the stage runs (the OOM killer's case). Both workers are let finish
    their start-up first: a worker killed while its sibling is still being spawned races CPython's
    ProcessPoolExecutor, which then prints tracebacks of its own (the sibling finds the broken pool's
    semaphores gone; the executor's thread iterates its process table while it grows)."""
    work = stage1_cuts(tiny, tmp_path)
    proc = subprocess.Popen([str(c) for c in fbank(work, chunk=1)], cwd=work, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers = workers_of(proc, 2)
    deadline = time.time() + 60
    while not all(started(w) for w in workers) and time.time() < deadline:
        assert proc.poll() is None, "the stage ended before its workers were killed"
        time.sleep(0.01)
    os.kill(workers[0], signal.SIGKILL)                 # e.g. the kernel's OOM killer
    out, err = proc.communicate(timeout=120)
    error_line(subprocess.CompletedProcess(proc.args, proc.returncode, out, err),
               "a feature worker process died", "fb/feats_train", "run stage 2 again to resume")
    assert not (work / "fb/cuts_train.jsonl.gz").exists()
    p = run(fbank(work, jobs=1, chunk=1), cwd=work)
    assert p.returncode == 0, p.stderr[-3000:]
    assert (work / "fb/cuts_train.jsonl.gz").exists()


def test_fbank_killed_main_process_takes_its_workers_along(tmp_path, tiny):
    """run.sh tees a step's output: an orphaned worker holding the pipe would hang it."""
    work = stage1_cuts(tiny, tmp_path)
    proc = subprocess.Popen([str(c) for c in fbank(work, chunk=1)], cwd=work, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    workers = workers_of(proc, 2)
    os.kill(proc.pid, signal.SIGKILL)                   # the main process only
    eof = threading.Event()
    threading.Thread(target=lambda: (proc.stdout.read(), eof.set()), daemon=True).start()
    assert eof.wait(30), "the output pipe stayed open after the stage was killed"
    proc.wait()
    deadline = time.time() + 10
    while any(alive(w) for w in workers) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(alive(w) for w in workers), "feature workers outlived their stage"


def test_fbank_stale_temporaries_and_lost_feature_files(tmp_path, tiny):
    work = stage1_cuts(tiny, tmp_path)
    fbank_here(work)
    feats = work / "fb/feats_train"
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = [feats / f".tmp-{dead.pid}-chunk-0001.jsonl.gz", work / f"fb/.tmp-{dead.pid}-cuts_train.jsonl.gz"]
    for s in stale:
        s.write_bytes(b"")                               # what a killed run leaves
    ours = feats / f".tmp-{os.getpid()}-chunk-0002.jsonl.gz"  # a live process's: kept
    ours.write_bytes(b"")
    ref = (feats / "chunk-0001.lca").read_bytes()
    (feats / "chunk-0001.lca").unlink()                  # its manifest stays: must not count as done
    p = run(fbank(work, jobs=1, chunk=8), cwd=work)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "resuming, 2 of 3 chunks already done" in p.stderr
    assert not any(s.exists() for s in stale) and ours.exists()
    assert (feats / "chunk-0001.lca").read_bytes() == ref


def test_fbank_truncated_stage1_manifest_names_stage_1(tmp_path, tiny):
    work = stage1_cuts(tiny, tmp_path)
    m = work / "man/cuts_train.jsonl.gz"
    m.write_bytes(m.read_bytes()[:100])
    error_line(run(fbank(work, jobs=1), cwd=work), "cannot read the cuts manifest man/cuts_train.jsonl.gz",
               "written by stage 1", "--stage 1 --stop-stage 1 --force true")
    assert not (work / "fb/cuts_train.jsonl.gz").exists()


def test_fbank_audio_gone_since_stage_1_names_the_cut_and_the_stages(tmp_path, tiny):
    from lhotse import CutSet, load_manifest
    from lhotse.utils import fastcopy

    work = stage1_cuts(tiny, tmp_path)
    cuts = list(load_manifest(work / "man/cuts_train.jsonl.gz"))
    rec = cuts[3].recording
    gone = fastcopy(rec, sources=[fastcopy(rec.sources[0], source=str(tmp_path / "gone.wav"))])
    cuts[3] = fastcopy(cuts[3], recording=gone)
    CutSet.from_cuts(cuts).to_file(work / "man/cuts_train.jsonl.gz")
    error_line(run(fbank(work, jobs=2, chunk=2), cwd=work), f"cannot read the audio of cut {cuts[3].id}",
               str(tmp_path / "gone.wav"), "--stage 0 --stop-stage 1 --force true")
    assert not (work / "fb/cuts_train.jsonl.gz").exists()


def gunzip(p: Path) -> bytes:
    with gzip.open(p, "rb") as f:
        return f.read()


@needs_unshare
def test_fbank_full_disk_and_read_only_output(tmp_path, tiny):
    ref = stage1_cuts(tiny, tmp_path / "ref")
    fbank_here(ref, chunk=2)
    work = stage1_cuts(tiny, tmp_path / "work")
    (work / "fb").mkdir()
    (work / "ro").mkdir()
    cmd = " ".join(str(c) for c in fbank(work, jobs=1))
    in_namespace(f"""
        mount -t tmpfs -o size=96k tmpfs fb
        {cmd} > out1 2> err1; echo $? > rc1
        mount -o remount,size=64m tmpfs fb
        {cmd} > out2 2> err2; echo $? > rc2
        cp -a fb fb_after
        mount -t tmpfs -o ro tmpfs ro
        {cmd.replace('--out-dir fb', '--out-dir ro')} > out3 2> err3; echo $? > rc3
    """, cwd=work)
    full = subprocess.CompletedProcess([], int((work / "rc1").read_text()), "", (work / "err1").read_text())
    error_line(full, "fb/feats_train/chunk-", "no space left on the disk", "free space there",
               "run stage 2 again", "finished chunks are kept and it resumes")
    assert int((work / "rc2").read_text()) == 0, (work / "err2").read_text()[-3000:]
    assert "chunks already done" in (work / "err2").read_text()
    after = work / "fb_after"
    assert gunzip(after / "cuts_train.jsonl.gz") == gunzip(ref / "fb/cuts_train.jsonl.gz")
    for f in (ref / "fb/feats_train").glob("*.lca"):
        assert (after / "feats_train" / f.name).read_bytes() == f.read_bytes(), f.name
    assert not list(after.rglob(".tmp-*"))
    ro = subprocess.CompletedProcess([], int((work / "rc3").read_text()), "", (work / "err3").read_text())
    error_line(ro, "ro/feats_train", "read-only", "make it writable", "run stage 2 again")


# ---- stage 4: training ---------------------------------------------------------------------

def train_cmd(tiny, exp: Path, *extra: object, cuts_train: Path | None = None,
              cuts_dev: Path | None = None) -> list:
    return [PY, ROOT / "steps/train.py", "--cuts-train", cuts_train or tiny.cuts_train,
            "--cuts-dev", cuts_dev or tiny.cuts_dev, "--lang-dir", tiny.lang_dir, "--exp-dir", exp,
            "--model-conf", "tiny", "--num-epochs", "1", "--max-duration", "8", "--warm-steps", "10",
            "--save-every-n", "2", "--keep-last-k", "2", "--log-interval", "5", "--seed", "3", *extra]


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory) -> Path:
    """A finished 1-epoch run: epoch-1.pt, checkpoint-4.pt and checkpoint-6.pt."""
    exp = tmp_path_factory.mktemp("trained") / "exp"
    p = run(train_cmd(tiny, exp))
    assert p.returncode == 0, p.stderr[-3000:]
    return exp


def test_corrupt_checkpoint_is_skipped_resume_from_the_newest_that_loads(tmp_path, tiny, trained):
    exp = tmp_path / "exp"
    shutil.copytree(trained, exp)
    steps = sorted(int(p.stem.split("-")[1]) for p in exp.glob("checkpoint-*.pt"))
    newest = exp / "epoch-1.pt"
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])          # truncated (a copy cut short, a bad disk)
    p = run(train_cmd(tiny, exp, "--num-epochs", "2"))
    assert p.returncode == 0, p.stderr[-3000:]
    assert f"skipping checkpoint {newest}, it does not load" in p.stderr
    assert f"using {exp / f'checkpoint-{steps[-1]}.pt'} instead" in p.stderr
    assert f"resuming from {exp / f'checkpoint-{steps[-1]}.pt'}" in p.stderr
    assert (exp / "epoch-2.pt").exists() and "Traceback" not in p.stderr
    # none loads: an error naming them; nothing deleted
    for c in list(exp.glob("checkpoint-*.pt")) + list(exp.glob("epoch-*.pt")):
        c.write_bytes(b"not a checkpoint")
    before = sorted(x.name for x in exp.iterdir())
    error_line(run(train_cmd(tiny, exp, "--num-epochs", "3")), f"no checkpoint in {exp} loads",
               "epoch-2.pt", "move them away to start from scratch")
    assert sorted(x.name for x in exp.iterdir()) == before


@needs_unshare
def test_checkpoint_on_a_full_disk_is_one_line_and_rerun_resumes(tmp_path, tiny, trained):
    exp = tmp_path / "exp"
    exp.mkdir()
    cmd = " ".join(str(c) for c in train_cmd(tiny, exp))
    # a checkpoint of the tiny model is ~5 MB: the first fits, the second does not
    in_namespace(f"""
        mount -t tmpfs -o size=7m tmpfs {exp}
        {cmd} > out1 2> err1; echo $? > rc1
        ls -a {exp} > left1
        mount -o remount,size=64m tmpfs {exp}
        {cmd} > out2 2> err2; echo $? > rc2
        cp {exp}/epoch-1.pt final.pt
    """, cwd=tmp_path)
    err1 = (tmp_path / "err1").read_text()
    error_line(subprocess.CompletedProcess([], int((tmp_path / "rc1").read_text()), "", err1),
               f"cannot write {exp}/checkpoint-4.pt", "no space left on the disk",
               "run training again: it resumes from the newest checkpoint")
    left = (tmp_path / "left1").read_text().split()
    assert "checkpoint-2.pt" in left and not [n for n in left if n.startswith(".tmp-")]
    err2 = (tmp_path / "err2").read_text()
    assert int((tmp_path / "rc2").read_text()) == 0, err2[-3000:]
    assert f"resuming from {exp}/checkpoint-2.pt" in err2
    a = torch.load(trained / "epoch-1.pt", weights_only=False)
    b = torch.load(tmp_path / "final.pt", weights_only=False)
    assert a["progress"] == b["progress"]
    assert all(torch.equal(v, b["model"][k]) for k, v in a["model"].items())


def test_features_deleted_from_under_training_name_stage_2(tmp_path, tiny):
    work = stage1_cuts(tiny, tmp_path)
    from lhotse import load_manifest

    load_manifest(tiny.cuts_dev).drop_features().to_file(work / "man/cuts_dev.jsonl.gz")
    fbank_here(work, ("train", "dev"))
    for lca in (work / "fb/feats_train").glob("*.lca"):
        lca.unlink()
    exp = work / "exp"
    train = train_cmd(tiny, exp, cuts_train=work / "fb/cuts_train.jsonl.gz",
                      cuts_dev=work / "fb/cuts_dev.jsonl.gz")
    error_line(run(train, cwd=work), "the features", "are missing", "fb/feats_train/chunk-",
               "written by stage 2", "--stage 2 --stop-stage 2 --force true")


def test_features_vanishing_mid_run_is_a_graft_error(tmp_path, tiny):
    """What a batch read meets when data/fbank disappears while training runs (in the training
    process and in a DataLoader worker)."""
    from lhotse import CutSet, load_manifest

    from graft.lang.langdir import load_lang_dir
    from graft.train.data import AsrDataset
    from graft.utils.errors import GraftError

    work = stage1_cuts(tiny, tmp_path)
    fbank_here(work, chunk=100)
    cuts = load_manifest(work / "fb/cuts_train.jsonl.gz")
    cuts = CutSet.from_cuts(c.with_features_path_prefix(str(work)) for c in cuts)
    dataset = AsrDataset(load_lang_dir(tiny.lang_dir))
    batch = cuts.subset(first=2)
    assert dataset[batch]["features"].shape[0] == 2
    shutil.rmtree(work / "fb")
    with pytest.raises(GraftError, match=r"cannot read the features of cut .* were they deleted .*stage 2"):
        dataset[batch]
    loader = torch.utils.data.DataLoader(dataset, sampler=[batch], batch_size=None, num_workers=1)
    with pytest.raises(GraftError) as info:
        next(iter(loader))
    assert str(info.value).startswith("cannot read the features of cut") and "Traceback" not in str(info.value)


def test_malformed_training_options_are_errors(tmp_path, tiny):
    from graft.train.options import parse_train_args
    from graft.utils.errors import GraftError

    exp = tmp_path / "exp"
    error_line(run(train_cmd(tiny, exp, "--num-epochs", "0")), "--num-epochs must be >= 1, got 0")
    assert not exp.exists()
    argv = [str(a) for a in train_cmd(tiny, exp)[2:]]
    with pytest.raises(SystemExit) as info:                   # argparse: usage + one line, exit 2
        parse_train_args(argv + ["--num-epochs", "two"])
    assert info.value.code == 2
    for opt, value, message in (("--max-duration", "nan", "--max-duration is nan"),
                                ("--max-duration", "-5", "--max-duration must be > 0, got -5.0"),
                                ("--save-every-n", "-1", "--save-every-n must be >= 0")):
        with pytest.raises(GraftError, match=re.escape(message)):
            parse_train_args(argv + [opt, value])


# ---- utils/new_recipe.sh and the shared error path --------------------------------------------

def test_new_recipe_checks_the_language_up_front(tmp_path):
    root = graft_tree(tmp_path / "graft")
    p = subprocess.run(["bash", str(root / "utils/new_recipe.sh"), "--lang", "xx", "mine"],
                       capture_output=True, text=True)
    assert p.returncode == 1
    assert "--lang 'xx' has no entry in the table LANGUAGES" in p.stderr and "graft/data/text.py" in p.stderr
    assert not (root / "egs/mine").exists() and not (root / "local/mine.py").exists()
    p = subprocess.run(["bash", str(root / "utils/new_recipe.sh"), "--audio-dir", "nowhere", "mine"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 1 and f"--audio-dir nowhere: no such folder (from {tmp_path})" in p.stderr
    assert not (root / "egs/mine").exists()


def test_a_full_disk_during_a_download_is_not_called_a_network_error(tmp_path):
    import errno

    from graft.data.adapter import fetch
    from graft.utils.errors import GraftError

    archive = tmp_path / "train-clean-5.tar.gz"

    def download() -> None:
        archive.write_bytes(b"x" * 1000)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(archive))

    with pytest.raises(GraftError, match=r"cannot write .*train-clean-5.tar.gz: no space left on the disk"):
        fetch("LibriSpeech train-clean-5", download, "get it by hand", partial_files=[archive])
    assert not archive.exists()


def test_run_main_turns_disk_errors_into_one_line(tmp_path):
    code = ("import errno, os\nfrom graft.utils.cli import run_main\n"
            "def main():\n    raise OSError(errno.{0}, os.strerror(errno.{0}), {1!r})\nrun_main(main)\n")
    target = str(tmp_path / "out.txt")
    for name, needle in (("ENOSPC", "no space left on the disk"), ("EROFS", "read-only"),
                         ("EACCES", "permission denied")):
        p = run([PY, "-c", code.format(name, target)])
        error_line(p, f"cannot write {target}", needle, "run the step again")
    p = run([PY, "-c", "from graft.utils.cli import run_main\nrun_main(lambda: 1 / 0)"])
    assert p.returncode == 1 and "ZeroDivisionError" in p.stderr   # a bug keeps its traceback
