"""Fixtures of the southbound client tests: the demo device, shared by a module where the
tests leave it as they found it, or of its own for one test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.device.demo import DemoDevice


def _running(factory: pytest.TempPathFactory) -> Iterator[DemoDevice]:
    dev = DemoDevice(factory.mktemp("device")).start()
    try:
        yield dev
    finally:
        dev.stop()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoDevice]:
    yield from _running(tmp_path_factory)


@pytest.fixture
def own_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoDevice]:
    yield from _running(tmp_path_factory)
