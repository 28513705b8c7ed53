"""Property test of the workqueue: any interleaving of add, add_after, get, done and clock steps keeps
client-go's invariants, and every add is followed by a processing of that item."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.runtime.clock import FakeClock
from controller.runtime.workqueue import WorkQueue

ITEMS = st.sampled_from(["a", "b", "c", "d"])
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), ITEMS),
        st.tuples(st.just("add_after"), ITEMS, st.floats(min_value=0.0, max_value=5.0)),
        st.tuples(st.just("get")),
        st.tuples(st.just("done")),
        st.tuples(st.just("step"), st.floats(min_value=0.0, max_value=3.0)),
    ),
    max_size=60,
)


def check_invariants(q: WorkQueue[str]) -> None:
    queue = list(q._queue)
    assert len(queue) == len(set(queue)), "an item is queued twice"
    for item in queue:
        assert item in q._dirty, "a queued item is not dirty"
        assert item not in q._processing, "a queued item is being processed"
    for item in q._waiting:
        assert item not in q._dirty or item in q._processing, "an item both ready and waiting"


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def run(ops: list[tuple[object, ...]]) -> None:
    clock = FakeClock()
    q: WorkQueue[str] = WorkQueue(clock=clock)
    holding: list[str] = []
    owed: set[str] = set()  # items added since they were last handed out
    for op in ops:
        if op[0] == "add":
            q.add(str(op[1]))
            owed.add(str(op[1]))
        elif op[0] == "add_after":
            q.add_after(str(op[1]), float(op[2]))  # type: ignore[arg-type]
            owed.add(str(op[1]))
        elif op[0] == "get" and len(q):
            item = await q.get()
            assert item not in holding, "handed out while being processed"
            holding.append(item)
            owed.discard(item)
        elif op[0] == "done" and holding:
            q.done(holding.pop(0))
        elif op[0] == "step":
            clock.step(float(op[1]))  # type: ignore[arg-type]
            await settle()
        check_invariants(q)
    # Drain: finish everything, let every delay pass; each owed item must come out.
    for item in holding:
        q.done(item)
    clock.step(10)
    await settle()
    while len(q):
        item = await q.get()
        owed.discard(item)
        q.done(item)
        check_invariants(q)
    assert not owed, f"added but never processed: {owed}"
    q.shutdown()


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_invariants_hold_for_any_interleaving(ops: list[tuple[object, ...]]) -> None:
    asyncio.run(run(ops))
