"""``orch doctor``: the project checked and, where it is safe, repaired. The host checks what it
owns (plugins load, every task's params are valid, runs of dead processes are closed, scratch
space); each plugin checks its own through ``orch_doctor`` (the MLflow tracker: its store answers,
no write waits in the outage journal)."""

from __future__ import annotations

from pathlib import Path

from orchestrator.errors import UserError
from orchestrator.manager import OrchPluginManager
from orchestrator.runner import Project, close_lost_runs
from orchestrator.task import Finding


def checkup(pm: OrchPluginManager, project: Project) -> list[Finding]:
    from orchestrator.registry import load_tasks

    tasks = load_tasks(pm)
    findings = [_plugins(pm, tasks), *_params(tasks, project)]
    lost = close_lost_runs(pm, project)
    findings.append(Finding("fixed", f"{len(lost)} run(s) of dead processes closed as KILLED: "
                                     + ", ".join(f"{lease.task} {lease.name}" for lease in lost))
                    if lost else Finding("ok", "no run is held open by a dead process"))
    findings += _scratch(project)
    for answer in pm.hook.orch_doctor(root=project.root):
        findings += answer or []
    return findings


def _plugins(pm: OrchPluginManager, tasks: dict) -> Finding:
    broken = [f"{s.name} ({s.status})" for s in pm.statuses.values() if s.status.startswith("error")]
    if broken:
        return Finding("problem", "plugins that failed to load: " + "; ".join(broken), "see `orch plugins`")
    return Finding("ok", f"{len(pm.statuses)} plugin(s) loaded, {len(tasks)} task(s): {', '.join(tasks)}")


def _params(tasks: dict, project: Project) -> list[Finding]:
    from orchestrator.params import load_task_params

    if project.params_file is None:
        return [Finding("ok", "no params.yaml: every task runs on its defaults")]
    bad = []
    for reg in tasks.values():
        try:
            load_task_params(reg.task, project.params_file, tasks=tasks)
        except UserError as exc:
            bad.append(Finding("problem", str(exc), "fix the key it names"))
    return bad or [Finding("ok", f"{project.params_file}: every task's params are valid")]


def _scratch(project: Project) -> list[Finding]:
    """Checkpoints of unfinished training, and work folders no live run holds (from before leases
    existed, or of a run whose lease was removed by hand): reported, with their size."""
    from orchestrator.leases import live_folders

    out = []
    checkpoints = list((project.scratch / "checkpoints").rglob("*.pt"))
    if checkpoints:
        out.append(Finding("ok", f"{len(checkpoints)} checkpoint(s) of unfinished training, {_mb(checkpoints)} "
                                 f"in {project.scratch / 'checkpoints'} (the same command resumes them)"))
    held = live_folders(project.scratch)
    orphans = [p for p in sorted((project.scratch / "runs").glob("*")) if p.is_dir() and str(p) not in held]
    if orphans:
        out.append(Finding("problem", f"{len(orphans)} work folder(s) in {project.scratch / 'runs'} that no "
                                      f"running command holds, {_mb(orphans)}", "remove them if no orch command runs"))
    return out


def _mb(paths: list[Path]) -> str:
    size = sum(f.stat().st_size for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file())
    return f"{size / 1e6:.1f} MB"
