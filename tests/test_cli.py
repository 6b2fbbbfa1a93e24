"""The orch command as users meet it: exit codes, one-line errors, fast help."""

from __future__ import annotations

import subprocess
import sys

import pytest


def orch(*args, cwd, env=None, check=None):
    out = subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=cwd, capture_output=True, text=True,
                         env=env, timeout=300)
    if check is not None:
        assert out.returncode == check, out.stderr
    return out


def one_line_error(out, code: int) -> str:
    assert out.returncode == code, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert lines[0].startswith("orch: error: ")
    return lines[0]


def test_help_does_not_import_heavy_libraries(project):
    code = ("import sys\nfrom orchestrator.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'mlflow', 'optuna', 'pandas', 'dvc') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=project)
    assert "Commands:" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_registering_the_tasks_does_not_import_torch(project):
    """`orch tasks`, `orch dvc` and every data-preparation stage pay no torch import for it."""
    code = ("import sys\nfrom orchestrator.manager import get_plugin_manager\n"
            "from orchestrator.registry import load_tasks\nprint(sorted(load_tasks(get_plugin_manager())), "
            "'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=project)
    assert out.stdout.strip() == "['charrnn', 'collab', 'rossmann', 'stylegan', 'ulmfit'] False", out.stderr


def test_plugins_and_tasks_list_the_builtins(project):
    out = orch("plugins", cwd=project, check=0)
    assert "collab" in out.stdout and "mlflow" in out.stdout and "loaded" in out.stdout
    out = orch("tasks", "-v", cwd=project, check=0)
    assert "collab" in out.stdout and "prepare -> train* -> report" in out.stdout
    assert "orch predict collab" in out.stdout


def test_unknown_task_exits_2(project):
    line = one_line_error(orch("run", "nope", cwd=project), 2)
    assert "unknown task 'nope' (available: charrnn, collab, rossmann, stylegan, ulmfit)" in line


def test_bad_param_exits_2_and_writes_nothing(project):
    (project / "params.yaml").write_text("collab:\n  lr: -1\n")
    line = one_line_error(orch("run", "collab", cwd=project), 2)
    assert line.endswith("params.yaml: collab.lr: must be > 0, got -1")
    assert not (project / "mlflow.db").exists() and not (project / ".orch").exists()


def test_bad_set_exits_2(project):
    line = one_line_error(orch("run", "collab", "--set", "epochs=two", cwd=project), 2)
    assert "collab.epochs: must be an integer, got 'two'" in line


def test_missing_params_file_exits_2(project):
    line = one_line_error(orch("run", "collab", "--params", "missing.yaml", cwd=project), 2)
    assert "missing.yaml: params file not found" in line


def test_bad_data_folder_exits_2_and_leaves_no_run(project):
    (project / "empty").mkdir()
    line = one_line_error(orch("run", "collab", "--set", "data=empty", cwd=project), 2)
    assert "empty: expected ratings.csv (ml-latest-small) or u.data (ml-100k)" in line
    assert not (project / "mlflow.db").exists()  # found while preparing: no run was opened
    assert list((project / ".orch" / "runs").iterdir()) == []  # the work folder is gone


def test_bad_ratings_file_exits_2(project):
    (project / "ml").mkdir()
    (project / "ml" / "ratings.csv").write_text("userId,movieId,rating\n1,2,x\n")
    line = one_line_error(orch("run", "collab", "--set", "data=ml", cwd=project), 2)
    assert line.endswith("ml/ratings.csv: column rating: expected numbers, got 'x' at data row 1")


def test_bad_space_exits_2(project):
    (project / "params.yaml").write_text("collab:\n  sweep:\n    space:\n      lr: {low: 0, high: 1, scale: log}\n")
    line = one_line_error(orch("sweep", "collab", cwd=project), 2)
    assert "collab.sweep.space.lr: a log scale needs low > 0" in line
    (project / "params.yaml").write_text("collab:\n  sweep:\n    space:\n      learning_rate: {low: 0.1, high: 1}\n")
    assert "collab.sweep.space.learning_rate: not a param of collab" in one_line_error(orch("sweep", "collab", cwd=project), 2)


def test_usage_errors_exit_2(project):
    assert orch("sweep", "collab", "--trials", "0", cwd=project).returncode == 2
    assert orch("frobnicate", cwd=project).returncode == 2


@pytest.mark.parametrize("args,expected", [
    (("sweep", "collab", "--storage", "bogus://x"), "--storage bogus://x: unsupported database 'bogus'"),
    (("sweep", "collab", "--storage", "sqlite:///no/such/folder/o.db"), "folder no/such/folder does not exist"),
    (("sweep", "collab", "--storage", "postgresql://me:secret@127.0.0.1:1/db"), "postgresql://me:***@127.0.0.1:1/db"),
    (("--tracking-uri", "bogus://x", "run", "collab"), "--tracking-uri bogus://x: unsupported tracking store 'bogus'"),
    (("--tracking-uri", "http://127.0.0.1:1", "run", "collab"), "http://127.0.0.1:1: no tracking server answers"),
    (("sweep", "collab", "--metric", "val_rmsee"), "collab.sweep.metric (or --metric): val_rmsee is not a metric"),
    (("sweep", "collab", "--refine", "--study", "nosuch"), "--study nosuch: no such study in sqlite:///"),
    (("report", "collab", "--run", "deadbeef"), "--run deadbeef: no tracked run with that id"),
    (("run", "collab", "--set", "charrnn.epochs=1"), "--set charrnn.epochs: charrnn is another task's section"),
])
def test_bad_stores_metrics_and_sections_exit_2_and_create_nothing(project, args, expected):
    line = one_line_error(orch(*args, cwd=project), 2)
    assert expected in line and "secret" not in line
    assert [p for p in project.rglob("*") if p.is_file()] == []  # no store, no work folder, no output


@pytest.mark.parametrize("value", ["soon", "-1", "nan"])
def test_a_bad_checkpoint_interval_exits_2_and_creates_nothing(project, value):
    import os

    out = orch("run", "collab", cwd=project, env={**os.environ, "ORCH_CHECKPOINT_EVERY": value})
    assert f"ORCH_CHECKPOINT_EVERY={value!r}: expected a number of seconds >= 0" in one_line_error(out, 2)
    assert [p for p in project.rglob("*") if p.is_file()] == []


def test_out_naming_a_file_exits_2(project):
    (project / "afile").write_text("")
    out = orch("run", "collab", "--out", "afile", cwd=project)
    assert out.returncode == 2 and "'afile' is a file" in out.stderr and "Traceback" not in out.stderr


def test_report_without_outputs_exits_2(project):
    line = one_line_error(orch("report", "collab", cwd=project), 2)
    assert "no metrics yet" in line


def test_predict_without_model_exits_2(project):
    line = one_line_error(orch("predict", "collab", "--user", "1", cwd=project), 2)
    assert "model.pt: not found" in line


def test_task_without_a_generate_command(project):
    line = one_line_error(orch("generate", "collab", cwd=project), 2)
    assert "task 'collab' has no generate command" in line


def test_broken_plugin_is_listed_and_the_rest_work(project, monkeypatch):
    from conftest import BROKEN_SITE, add_site

    add_site(monkeypatch, BROKEN_SITE)
    out = orch("plugins", cwd=project, check=0)
    row = next(line for line in out.stdout.splitlines() if line.startswith("broken"))
    assert "orch-broken" in row and "error: ImportError" in row
    assert "collab" in orch("tasks", cwd=project, check=0).stdout


@pytest.mark.parametrize("args", [("--version",), ("run", "--help"), ("sweep", "--help")])
def test_help_and_version(project, args):
    out = orch(*args, cwd=project, check=0)
    assert out.stdout


def test_python_m_and_orch_script_agree(project):
    import shutil

    script = shutil.which("orch")
    assert script, "the orch console script is installed"
    out = subprocess.run([script, "tasks"], cwd=project, capture_output=True, text=True)
    assert out.returncode == 0 and "collab" in out.stdout


def test_plugins_add_commands_through_orch_register_commands(project, toy_site):
    out = orch("toy-hello", "world", cwd=project)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "hello world"
    listed = orch("--help", cwd=project).stdout
    assert "toy-hello" in listed and "ui" in listed  # the MLflow plugin adds `orch ui` the same way
    assert "--port" in orch("ui", "--help", cwd=project).stdout
    unknown = orch("no-such-command", cwd=project)
    assert unknown.returncode == 2 and "No such command" in unknown.stderr


def test_what_a_plugin_author_meets_first(project, toy_site):
    """A stage before its inputs: one line naming the stage to run first, no run opened; `orch
    report` right after `orch run` reports that run; `orch tasks -v` shows the space `orch sweep`
    uses (params.yaml's over the task's)."""
    import yaml

    (project / "params.yaml").write_text(yaml.safe_dump({"toy": {"epochs": 2}}))
    early = one_line_error(orch("stage", "toy", "train", cwd=project), 2)
    assert early == (f"orch: error: stage 'train' of toy reads the output of 'prepare', which is not there "
                     f"({project / 'outputs' / 'toy' / 'prepare'}): run `orch stage toy prepare` first, or `dvc repro`")
    assert not (project / "mlflow.db").exists()  # no run was opened, so none is left FAILED

    assert "run `orch run toy` or `dvc repro`" in one_line_error(orch("report", "toy", cwd=project), 2)
    orch("-q", "run", "toy", cwd=project, check=0)
    report = orch("report", "toy", cwd=project, check=0)
    assert report.stdout.startswith("# Bias/variance report: toy") and "the last `orch run toy`" in report.stderr

    assert "search space (the task's default): lr {'low': 0.001, 'high': 0.5" in orch("tasks", "-v", "toy", cwd=project).stdout
    params = {"toy": {"epochs": 2, "sweep": {"space": {"lr": {"low": 0.01, "high": 0.2}}}}}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    shown = orch("tasks", "-v", "toy", cwd=project).stdout
    assert f"search space ({project / 'params.yaml'}): lr {{'low': 0.01, 'high': 0.2," in shown
