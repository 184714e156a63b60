"""What differs between the two tasks, in one place: plates (one softmax per character slot)
and folder-per-class classification.

Every stage asks the task object of its configuration (``params.kind``, or ``task_for(name)``) for the
head's shape, the Keras metrics, the monitored and headline metrics, how labels are read,
encoded, split and counted, how predictions are scored, decoded and shown, instead of
branching on the task's name. Only NumPy is imported here: the TensorFlow-free reader
(:mod:`transferlab.inference.runtime`) decodes through it.
"""

from __future__ import annotations

from transferlab.errors import TransferlabError
from transferlab.tasks.base import Task
from transferlab.tasks.classification import ClassificationTask
from transferlab.tasks.plates import PlateTask

TASKS: dict[str, Task] = {task.name: task for task in (PlateTask(), ClassificationTask())}


def task_for(name: str) -> Task:
    """The task object of ``params.task`` / ``labels.json``'s ``task``."""
    try:
        return TASKS[name]
    except KeyError:
        raise TransferlabError(f"unknown task {name!r} ({' or '.join(TASKS)})") from None


__all__ = ["TASKS", "ClassificationTask", "PlateTask", "Task", "task_for"]
