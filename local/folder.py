#!/usr/bin/env python3
"""Bring-your-own corpus adapter: a folder of audio files and a transcript table.

Usage:
    local/folder.py download --dl-dir data/corpus --audio-dir /data/my_corpus \
        --transcripts /data/my_corpus/transcripts.tsv --language cs \
        [--dev-fraction 0.1 --test-fraction 0.1 --split-by speaker --seed 0]
    local/folder.py prepare --dl-dir data/corpus --language cs --out-dir data/manifests/cs \
        --train-subsets "15 30" --seed 0

The table is tab-separated (`.csv`: comma-separated) with a header: `id` and `text` are
required; `audio` (a path relative to --audio-dir; default: the file under --audio-dir whose
name without extension is the id), `speaker`, `language` and `split` (train/dev/test) are
optional. Without a split column, dev and test are drawn deterministically (--seed). The
shared machinery (checks, splits, the index, stage 1) is graft.data.adapter.
"""
from graft.data import adapter

if __name__ == "__main__":
    adapter.main(__doc__, adapter.add_folder_args, adapter.download_folder)
