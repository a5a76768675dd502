"""The district simulator: a deterministic model of the sample district's reporting traffic.

As a library::

    from zhibao_client.simulator import Simulation, SimulationConfig, deliver

    simulation = Simulation(SimulationConfig(seed=7, days=10, outbreak=True))
    for event in deliver(simulation.events(), duplicate_rate=0.01, reorder_window=20):
        ...                                  # CloudEvents dicts, in (roughly) time order
    simulation.truth.at("640106001002", day).fevers   # ground truth per community and day

``run(events, client, seconds_per_day=…)`` posts them through intake (``zhibao simulate``).

With ``SimulationConfig(outbreak=True, loop=True)``, ``simulation.timeline()`` also
yields the response loop's steps (a level declared and lifted, companion tasks
pushed down, their results); ``run(…, centre=CommandCentre(response_url, operate_token,
simulation.truth))`` carries them out against the response service, and
``simulation.truth.tasks`` / ``task_figures(at)`` say how every task should end.

Every community reports its key-person register and its key persons raise needs
(:mod:`.care`); ``simulation.truth.key_persons(unit)`` and ``need_figures(at, unit)``
say what the rollups' ``key_persons``, ``needs_open`` and ``needs_overdue`` must show
(with ``loop``, the needs met through their tasks' results).
"""

from zhibao_client.simulator.command_centre import CommandCentre
from zhibao_client.simulator.config import SimulationConfig
from zhibao_client.simulator.delivery import deliver
from zhibao_client.simulator.model import Simulation
from zhibao_client.simulator.runner import Progress, run
from zhibao_client.simulator.truth import (
    DayTotals,
    ExpectedAlert,
    ExpectedNeed,
    ExpectedTask,
    GroundTruth,
    NeedFigures,
    TaskFigures,
)

__all__ = [
    "CommandCentre",
    "DayTotals",
    "ExpectedAlert",
    "ExpectedNeed",
    "ExpectedTask",
    "GroundTruth",
    "NeedFigures",
    "Progress",
    "Simulation",
    "SimulationConfig",
    "TaskFigures",
    "deliver",
    "run",
]
