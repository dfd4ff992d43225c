"""Every test module here runs on one thread (see ``builders.single_thread``)."""

import pytest

from builders import single_thread

one_thread = pytest.fixture(scope="module", autouse=True)(single_thread)
