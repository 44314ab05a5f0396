"""Tests of the pure core (`states/`): no Prefect, no database, time passed in as ``now``."""
