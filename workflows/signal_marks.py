"""A signal that changes the cart leaves a command in its workflow task.

Core folds a workflow task that completed with no command, and is followed at once by
the next task, into that next task when a worker that does not hold the cart replays its
history (``temporalio/sdk-core``, ``arch_docs/workflow_task_chunking.md``): it skips what
it takes for an empty task, unless it can tell that the next task carries an update. A
fresh worker taking a task whose update is still a message (not yet in the history)
folds; a later replay, which finds the update accepted in the history, does not. So the
fresh worker applies the signal of the empty task at the next task's time and a replay at
its own: a signal whose change made nothing due before the loop's alarm (its task had no
command) could make the two decide differently, and the cart was stuck with a
nondeterminism error (``bench/known_issues``; ``tests/test_empty_task_fold.py`` makes it
happen).

So a signal that changed the cart writes the cart's version into the workflow's memo
(one ``WorkflowPropertiesModified`` event): its task is never empty. Under the patch
``signal-tasks-marked``, asked only when a signal changed the cart: histories recorded
before it replay as they were."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.state import Cart

#: the patch under which a signal's change is marked in the memo
SIGNAL_MARK_PATCH = "signal-tasks-marked"
#: the memo's key: the cart's version after the signal
MEMO_KEY = "cart_version"


@contextmanager
def marked(cart_of: Callable[[], Cart]) -> Iterator[None]:
    """Around a signal's handling: if the cart (``cart_of()``, which a restore may replace)
    changed, its version goes to the memo."""
    before = cart_of().version
    yield
    cart = cart_of()
    if cart.version != before and workflow.patched(SIGNAL_MARK_PATCH):
        workflow.upsert_memo({MEMO_KEY: cart.version})
