"""A refused action ends its run Failed with the rule's message, and nothing more (issue 11).

A flow that returns ``Failed(message=...)`` on purpose (a rule's refusal, an answer not
confirmed) still has Prefect's engine ask the run's result when it ends, which raises
``FailedRun``; the engine then logs it as an "unexpected exception" with a traceback of
~40 lines in Prefect's own frames (prefect 3.9.1: ``flow_engine.run_flow`` logs it to the
run's logs under a work pool; ``engine.handle_engine_signals`` to the terminal of ``prepflow
serve``/``up``). ``FailedRun`` is raised only for a Failed state that holds no exception, i.e.
one a flow chose; an exception raised in our code keeps its traceback. This filter drops that
one record: the run's state and its "Finished in state Failed(...)" line already carry the
rule's message.
"""

from __future__ import annotations

import logging

#: The loggers Prefect's engine reports a run's end on.
ENGINE_LOGGERS = ("prefect.flow_runs", "prefect.engine")


class ChosenFailure(logging.Filter):
    """Drop the engine's report of a Failed state a flow returned on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a record whose exception is FailedRun; every other record is kept."""
        from prefect.exceptions import FailedRun

        return not (record.exc_info and isinstance(record.exc_info[1], FailedRun))


def install() -> None:
    """Add the filter to the engine's loggers (once)."""
    for name in ENGINE_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, ChosenFailure) for f in logger.filters):
            logger.addFilter(ChosenFailure())
