"""Stage stamps: a record of a step's inputs (content hashes) and command line beside its outputs,
so a recipe re-runs a step whose inputs or options changed, and resumes one that was killed.

Usage (utils/stage.sh calls it; exit codes: 0 same as the finished run, 1 changed, 2 no stamp,
3 same as a run that did not finish):
    python -m graft.utils.stamp check --stamp data/fbank/en/.stage2.stamp --inputs "a.jsonl.gz b" -- CMD...
    python -m graft.utils.stamp write --stamp ... --state running|done --inputs "..." -- CMD...

A file is hashed once: the stamp keeps (size, mtime) beside each hash, and an unchanged file
is not read again. A directory input stands for the list of its files with sizes and times.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path


def _file_hash(path: Path, old: dict | None) -> dict:
    st = path.stat()
    if old and old.get("size") == st.st_size and old.get("mtime_ns") == st.st_mtime_ns and old.get("sha"):
        return old
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha": h.hexdigest()[:20]}


def _dir_hash(path: Path) -> dict:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file() and not p.name.startswith(".tmp"):
            st = p.stat()
            h.update(f"{p.relative_to(path)} {st.st_size} {st.st_mtime_ns}\n".encode())
    return {"dir": True, "sha": h.hexdigest()[:20]}


def describe_inputs(inputs: list[str], old: dict | None = None) -> dict[str, dict]:
    """path -> hash record ({"missing": true} for an input that is not there)."""
    old = old or {}
    out: dict[str, dict] = {}
    for name in inputs:
        p = Path(name)
        if p.is_file():
            out[name] = _file_hash(p, old.get(name))
        elif p.is_dir():
            out[name] = _dir_hash(p)
        else:
            out[name] = {"missing": True}
    return out


def _same(a: dict, b: dict) -> bool:
    keys = ("sha", "missing", "dir")
    return all(a.get(k) == b.get(k) for k in keys)


def compare(stamp: dict, command: list[str], inputs: dict[str, dict]) -> list[str]:
    """What differs between a stamp and now, as short phrases (empty: nothing)."""
    changes = []
    if stamp.get("command") != command:
        old = stamp.get("command") or []
        removed = [a for a in old if a not in command]
        added = [a for a in command if a not in old]
        changes.append("options " + (" ".join(removed[:6]) or "-") + " -> " + (" ".join(added[:6]) or "-"))
    old_inputs = stamp.get("inputs") or {}
    for name in sorted(set(old_inputs) | set(inputs)):
        if name not in inputs or name not in old_inputs:
            changes.append(f"input {name} {'added' if name in inputs else 'dropped'}")
        elif not _same(old_inputs[name], inputs[name]):
            changes.append(f"{name} changed")
    return changes


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" in argv:
        i = argv.index("--")
        argv, command = argv[:i], argv[i + 1:]
    else:
        command = []
    p = argparse.ArgumentParser(prog="graft.utils.stamp")
    p.add_argument("action", choices=("check", "write"))
    p.add_argument("--stamp", required=True, type=Path)
    p.add_argument("--inputs", default="")
    p.add_argument("--state", choices=("running", "done"), default="done")
    args = p.parse_args(argv)
    old = None
    if args.stamp.is_file():
        try:
            old = json.loads(args.stamp.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, OSError):
            old = None
    inputs = describe_inputs(args.inputs.split(), (old or {}).get("inputs"))
    if args.action == "write":
        args.stamp.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.stamp.with_name(f".tmp-{os.getpid()}-{args.stamp.name}")
        tmp.write_text(json.dumps({"state": args.state, "command": command, "inputs": inputs}, indent=1),
                       encoding="utf-8")
        os.replace(tmp, args.stamp)
        return 0
    if old is None:
        return 2
    changes = compare(old, command, inputs)
    if changes:
        print("; ".join(changes))
        return 1
    return 0 if old.get("state") == "done" else 3


if __name__ == "__main__":
    sys.exit(main())
