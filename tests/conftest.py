import sys
from pathlib import Path

import torch

# Tests are small; one thread avoids oversubscription on 2-core CI machines.
torch.set_num_threads(1)
sys.path.insert(0, str(Path(__file__).resolve().parent))
