"""Fixtures of the multi-process tests."""

from __future__ import annotations

import pytest

from distributed_helpers import TOKEN, WorkerAgent, write_corpus


@pytest.fixture
def start_agents(tmp_path):
    """Return a function that starts worker agents in their own folders; all are stopped at the end."""
    agents: list[WorkerAgent] = []

    def start(count: int, token: str | None = TOKEN, corpus_seeds: tuple[int, ...] | None = None) -> list[WorkerAgent]:
        started = []
        for index in range(count):
            folder = tmp_path / f"worker{len(agents) + 1}"
            folder.mkdir()
            seed = corpus_seeds[index] if corpus_seeds else 0
            write_corpus(folder / "corpus.txt", seed)
            agent = WorkerAgent(folder, token)
            agents.append(agent)
            started.append(agent)
        for agent in started:
            agent.wait_listening()
        return started

    yield start
    for agent in agents:
        agent.stop()
