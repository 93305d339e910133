"""cvae.cuda: the RNG state of the trainer's own device and deterministic kernels
(issue 16, items 1 and 4); what runs without a GPU."""
from __future__ import annotations

import torch

from cvae.cuda import pick_cuda_state, use_deterministic_kernels


def test_a_checkpoint_from_two_visible_gpus_resumes_where_one_is_visible():
    own, other = torch.tensor([1], dtype=torch.uint8), torch.tensor([2], dtype=torch.uint8)
    # older checkpoints saved get_rng_state_all(): one state per visible GPU; the trainer ran on entry 0
    assert pick_cuda_state([own, other]) is own
    assert pick_cuda_state((own,)) is own
    assert pick_cuda_state([]) is None
    # this version saves the trainer's device only
    assert pick_cuda_state(own) is own


def test_deterministic_kernels_turn_off_autotuning_and_tf32():
    flags = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
             torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    try:
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = True
        use_deterministic_kernels()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    finally:
        (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
         torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) = flags
