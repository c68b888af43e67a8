"""Single decisions asked in the same turn of the event loop, decided as one engine call.

Under load, several requests for single decisions reach the event loop together. Decided
as one call, they share its Redis round trips (one read, one log) and each stage of the
engine runs over all of them while its code and data are in the CPU's caches
(decisions/engine.py). Nothing waits to fill a batch: a request joins only those asked in
the same turn of the loop, so an idle server decides each request alone, as before. A call
takes at most `most` requests (32, as many as NBO_MAX_IN_FLIGHT admits by default): every
request of a call waits for all of it, so a burst is decided in calls of bounded length.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from decisions.outcome import Decision, DecisionRequest

Decide = Callable[[Sequence[DecisionRequest]], Awaitable[list[Decision]]]


class DecisionCoalescer:
    def __init__(self, decide: Decide, most: int = 32) -> None:
        self._decide = decide
        self._most = most
        self._waiting: list[tuple[DecisionRequest, asyncio.Future[Decision]]] = []
        self._deciding: set[asyncio.Task[None]] = set()  # referenced until done

    async def decide(self, request: DecisionRequest) -> Decision:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Decision] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._start)  # after the requests already ready to run
        self._waiting.append((request, answer))
        if len(self._waiting) >= self._most:
            self._start()
        return await answer

    def _start(self) -> None:
        batch, self._waiting = self._waiting, []
        if not batch:  # started already, when it filled up
            return
        task = asyncio.get_running_loop().create_task(self._answer(batch))
        self._deciding.add(task)
        task.add_done_callback(self._deciding.discard)

    async def _answer(self, batch: list[tuple[DecisionRequest, asyncio.Future[Decision]]]
                      ) -> None:
        try:
            decisions = await self._decide([request for request, _ in batch])
        except Exception as error:
            if len(batch) > 1:  # one request's failure is its own: each decided alone
                await asyncio.gather(*(self._answer([one]) for one in batch))
            elif not batch[0][1].done():
                batch[0][1].set_exception(error)
            return
        except BaseException:  # cancelled (the loop shutting down): so are its requests
            for _, answer in batch:
                answer.cancel()
            raise
        for (_, answer), decision in zip(batch, decisions, strict=True):
            if not answer.done():  # its request may have been cancelled meanwhile
                answer.set_result(decision)
