"""One torch thread: the tests are small-op bound, and a second thread only contends."""

import torch

torch.set_num_threads(1)
