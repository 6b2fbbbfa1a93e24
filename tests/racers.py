"""What the racing processes of tests/test_scale_out.py run, in a module of its own: a spawned
process imports the module of its target, and this one imports only what a race needs (the test
module brings pytest, MLflow and the integration helpers: 2 CPU-s more in each of 11 processes)."""


def agree(url: str, barrier, value: str, out) -> None:
    """Propose ``value`` as the study's parent, take a worker number; put (agreed value, number)."""
    from orchestrator.sweep import agree as agreements

    barrier.wait()
    out.put((agreements.agree(url, "s", "parent", value), agreements.take_number(url, "s", "worker", value)[0]))


def open_storage(url: str, barrier, out) -> None:
    """Open the study storage at the same moment as the others (Optuna creates its schema here)."""
    from orchestrator.sweep.study import storage

    barrier.wait()
    storage(url)
    out.put("opened")
