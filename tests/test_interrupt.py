"""Stop signals: SIGTERM stops as Ctrl-C does, a hook call finishes first, a dropped stop is raised again."""

from __future__ import annotations

import gc
import os
import signal
import sys

import pytest

from orchestrator import interrupt
from orchestrator.interrupt import Interrupted


@pytest.fixture
def restored():
    """This test process's own handlers again afterwards."""
    saved = {s: signal.getsignal(s) for s in interrupt.SIGNALS}, sys.unraisablehook
    yield
    interrupt.reset()
    for signum, handler in saved[0].items():
        signal.signal(signum, handler)
    sys.unraisablehook = saved[1]


@pytest.fixture
def handlers(restored):
    interrupt.install()


def test_sigterm_raises_interrupted_with_its_exit_code(handlers):
    with pytest.raises(Interrupted) as caught:
        os.kill(os.getpid(), signal.SIGTERM)
    assert caught.value.signum == signal.SIGTERM and caught.value.exit_code == 143
    assert isinstance(caught.value, KeyboardInterrupt)  # every `except KeyboardInterrupt` handles it


def test_a_first_signal_waits_for_the_shielded_section(handlers):
    done = []
    with pytest.raises(Interrupted):
        with interrupt.shielded():
            os.kill(os.getpid(), signal.SIGINT)
            done.append("the write finished")
    assert done == ["the write finished"]


def test_a_second_signal_is_not_held_back(handlers):
    done = []
    with pytest.raises(Interrupted):
        with interrupt.shielded():
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
            done.append("never")
    assert done == []


def test_a_dropped_stop_is_raised_again_by_check(handlers):
    class Finalized:
        def __del__(self):  # Python cannot raise from here: the Interrupted is dropped
            os.kill(os.getpid(), signal.SIGTERM)

    Finalized()
    gc.collect()
    with pytest.raises(Interrupted) as caught:
        interrupt.check()
    assert caught.value.exit_code == 143


def test_the_dropped_stop_is_not_printed(handlers, capsys):
    class Finalized:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)

    Finalized()
    gc.collect()
    assert "Exception ignored" not in capsys.readouterr().err
    interrupt.reset()


def test_check_is_silent_until_a_stop_is_requested(handlers):
    interrupt.check()


def test_a_signal_ignored_at_start_stays_ignored(restored):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as nohup and background jobs start a process
    interrupt.install()
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL


def test_a_stop_held_back_by_a_shield_is_raised_by_the_next_check_in_an_exposed_section(handlers):
    with interrupt.shielded():
        os.kill(os.getpid(), signal.SIGTERM)  # during Optuna's ask: held back
        with interrupt.exposed():  # the trial's training
            with pytest.raises(Interrupted):
                interrupt.check()



def test_a_signal_in_an_exposed_section_raises_at_once(handlers):
    with interrupt.shielded():
        with interrupt.exposed():
            with pytest.raises(Interrupted):
                os.kill(os.getpid(), signal.SIGINT)
