"""``python -m orchestrator`` is ``orch``."""

from orchestrator.warm import main

if __name__ == "__main__":
    main()
