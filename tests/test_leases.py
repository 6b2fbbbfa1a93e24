"""Leases: the run of a dead process is found once; live holders, other machines and reused pids are told apart."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

from orchestrator import leases
from orchestrator.leases import Lease


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_live_holder_keeps_its_lease(tmp_path):
    path = leases.hold(tmp_path, Lease("toy", "r1", {"mlflow": "a"}))
    assert leases.collect_lost(tmp_path) == [] and path.exists()
    leases.release(path)
    assert not path.exists()


def test_a_dead_holder_is_found_once(tmp_path):
    lease = replace(Lease("toy", "r1", {"mlflow": "a"}, study="s", trial=3), pid=dead_pid())
    leases.hold(tmp_path, lease)
    assert leases.collect_lost(tmp_path) == [lease]
    assert leases.collect_lost(tmp_path) == []  # taken: a second command does not close it again


def test_a_reused_pid_is_not_the_dead_holder(tmp_path):
    lease = replace(Lease("toy", "r1", {"mlflow": "a"}), started=1.0)  # this pid, another start time
    leases.hold(tmp_path, lease)
    assert leases.collect_lost(tmp_path) == [lease]


def test_another_machine_is_not_judged_from_here(tmp_path):
    leases.hold(tmp_path, replace(Lease("toy", "r1", {"mlflow": "a"}), host="elsewhere", pid=dead_pid()))
    assert leases.collect_lost(tmp_path) == []


def test_a_run_held_again_by_a_live_process_is_not_lost(tmp_path):
    leases.hold(tmp_path, replace(Lease("toy", "sweep-s", {"mlflow": "p"}), pid=dead_pid()))
    leases.hold(tmp_path, Lease("toy", "sweep-s", {"mlflow": "p"}))  # the resumed sweep
    assert leases.collect_lost(tmp_path) == []
    assert len(list((tmp_path / leases.FOLDER).glob("*.json"))) == 1  # the dead one is cleared


def test_foreign_files_are_left_alone(tmp_path):
    (tmp_path / leases.FOLDER).mkdir()
    (tmp_path / leases.FOLDER / "notes.json").write_text(json.dumps({"hello": 1}))
    assert leases.collect_lost(tmp_path) == []


def test_a_dead_trial_lease_without_a_run_is_lost_even_beside_a_live_one(tmp_path):
    """A trial is leased before its run opens (no tracking ids yet): a live trial's lease does not
    hide a dead one's."""
    live = leases.hold(tmp_path, Lease("toy", "trial-1", {}, study="s", trial=1))
    dead = replace(Lease("toy", "trial-0", {}, study="s", trial=0), pid=dead_pid())
    leases.hold(tmp_path, dead)
    assert leases.collect_lost(tmp_path) == [dead] and live.exists()


def test_a_dead_but_unreaped_holder_is_dead(tmp_path):
    """Workers killed with their driver are orphans; where the container's init does not reap them
    they stay zombies, with their pid and start time, and their trials were taken for running."""
    import os

    import psutil

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    started = psutil.Process(proc.pid).create_time()
    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # ended, left unreaped: a zombie
    try:
        lease = replace(Lease("toy", "trial-0", {}, study="s", trial=0), pid=proc.pid, started=started)
        leases.hold(tmp_path, lease)
        assert leases.collect_lost(tmp_path) == [lease]
    finally:
        proc.wait()
