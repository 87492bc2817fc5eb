"""settle_heap: start-up objects leave the collector's view, and a reload's garbage still goes."""

from __future__ import annotations

import gc
import weakref

from sniui.engine.heap import settle_heap


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_cyclic_garbage_frozen_at_start_up_is_freed_by_the_next_settle():
    try:
        first, second = Node(), Node()
        first.other, second.other = second, first        # a cycle: only the collector frees it
        gone = weakref.ref(first)
        settle_heap()                                    # start-up: the "old config" is frozen
        assert gc.get_freeze_count() > 0
        del first, second                                # a reload drops it
        gc.collect()
        assert gone() is not None                        # frozen: a plain collection leaves it
        settle_heap()                                    # what the daemon does after a reload
        assert gone() is None
    finally:
        gc.unfreeze()                                    # leave the test process as it was
