"""Training tests run tiny models, where one thread beats two (no contention, and on a shared CI machine
the second core is often busy); the losses do not depend on the thread count in these tests."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
