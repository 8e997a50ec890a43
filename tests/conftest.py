"""Fixtures several test modules share: the tiny ASR corpus and one torch thread per test.

Usage (in a test module):
    pytestmark = pytest.mark.usefixtures("one_thread")   # every test of the module on 1 thread
    def test_x(tiny): ...                                # tiny_asr.TinyAsr, built once a session
"""
from __future__ import annotations

import pytest
import torch

from tiny_asr import tiny_asr_session


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    return tiny_asr_session(tmp_path_factory)


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
