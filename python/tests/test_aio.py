"""pypm.aio.Client: the same calls as coroutines."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import pypm
import pypm.aio


def test_async_twin(running: pypm.Client) -> None:
    async def main() -> None:
        c = pypm.aio.Client(running.config)
        st = await c.status()
        assert {i.app for i in st.instances} == {"ticker", "once", "noisy"}
        assert (await c.inspect("ticker")).app == "ticker"
        assert (await c.plan()).changes == []
        assert await c.reload()
        await c.wait_ready("ticker", timeout=10)
        for _ in range(500):
            lines = await c.logs("ticker", 2)
            if len(lines) == 2:
                break
            await asyncio.sleep(0.02)
        assert len(lines) == 2
        agen = c.follow_logs("ticker")
        first = await agen.__anext__()
        await agen.aclose()
        assert first.startswith("tick")
        ev = c.events(from_start=True, idle_timeout=2)
        e = await ev.__anext__()
        await ev.aclose()
        assert e.event == "started"
        with pytest.raises(pypm.NotFound):
            await c.restart("nope")
        assert "ticker" in await c.restart("ticker")

    asyncio.run(main())


def test_async_no_supervisor(project: Path) -> None:
    async def main() -> None:
        with pytest.raises(pypm.NoSupervisor):
            await pypm.aio.Client(project / "pypm.toml").status()

    asyncio.run(main())
