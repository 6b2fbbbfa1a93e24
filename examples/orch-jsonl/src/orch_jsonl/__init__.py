"""orch-jsonl: an orch tracker plugin that appends every lifecycle event to a JSON Lines file."""

from orch_jsonl.tracker import JsonlTracker

ORCH_API = ">=1,<2"

tracker = JsonlTracker()
