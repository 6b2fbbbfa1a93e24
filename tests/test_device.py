"""torch's CPU threads: each training's share of the cores among the trainings on this machine."""

from __future__ import annotations

import subprocess
import sys

import pytest

from orchestrator import device
from orchestrator.leases import started_at


def test_the_share_is_even_and_never_zero():
    assert [device.threads_for(2, n) for n in (0, 1, 2, 3)] == [2, 2, 1, 1]
    assert device.threads_for(8, 3) == 2


JOIN = """
import sys
from pathlib import Path
from orchestrator.device import Trainings
Trainings(Path(sys.argv[1])).join()
print("joined", flush=True)
sys.stdin.read()  # until the test kills this process
"""


def test_trainings_of_other_processes_count_until_they_die(tmp_path):
    mine = device.Trainings(tmp_path)
    mine.join()
    other = subprocess.Popen([sys.executable, "-c", JOIN, str(tmp_path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "joined"
        assert mine.live() == 2
    finally:
        other.kill()
        other.wait(timeout=30)
    assert mine.live() == 1  # killed without leaving: its file is found dead and removed
    assert [p.name for p in tmp_path.iterdir()] == [mine.mine.name]
    mine.leave()
    assert mine.live() == 0


@pytest.fixture
def no_thread_settings(monkeypatch, tmp_path):
    for name in (device.THREADS_ENV, device.CHOSEN_ENV, "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ORCH_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setattr(device, "_TRAININGS", None)
    monkeypatch.setattr(device, "usable_cores", lambda: 4)
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    yield torch
    torch.set_num_threads(before)
    device.leave_trainings()


def test_a_training_takes_its_share_and_a_setting_overrides_it(no_thread_settings, monkeypatch, tmp_path):
    torch = no_thread_settings
    device.join_trainings()
    assert torch.get_num_threads() == 4  # alone: every usable core
    (tmp_path / "trainings" / "1").write_text(repr(started_at(1)))  # pid 1 lives as long as we do
    assert device.share_threads() == 2 and torch.get_num_threads() == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's (or Ray's) setting is kept
    assert device.share_threads() == 3
    monkeypatch.setenv(device.THREADS_ENV, "1")  # orch's own setting wins
    assert device.share_threads() == 1 and torch.get_num_threads() == 1
    assert device.share_threads(every=60) is None  # a batch loop checks at most that often


def test_the_users_omp_setting_is_never_taken_for_a_share(no_thread_settings, monkeypatch):
    """A user's OMP_NUM_THREADS written before torch starts stays the user's on every later call
    (it once became orch's share: the number of threads then followed the other trainings)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setitem(sys.modules, "torch", None)  # torch not started yet
    assert device.share_threads() == 1
    assert device.CHOSEN_ENV not in __import__("os").environ
    monkeypatch.setattr(device, "usable_cores", lambda: 8)
    assert device.share_threads() == 1
