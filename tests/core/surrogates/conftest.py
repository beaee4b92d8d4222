import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny problems: intra-op threads only add contention on a shared 2-core machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
