import logging
import sys
from pathlib import Path

import pytest
import torch

# Tests are small; one thread avoids oversubscription on 2-core CI machines.
torch.set_num_threads(1)
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def vsrt_log(caplog):
    """``caplog`` that also sees the ``vsrt`` logger, which stops propagating once training configured it."""
    logger = logging.getLogger("vsrt")
    level = logger.level
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.INFO)
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.setLevel(level)
