"""cvae.core.cuda: the RNG state of the trainer's own device and deterministic kernels
(issue 16, items 1 and 4); what runs without a GPU."""
from __future__ import annotations

import torch

from cvae.core.cuda import pick_cuda_state, use_deterministic_kernels


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


# --- items 5-7: what the trainer does differently on CUDA, checked without a GPU ---------
from cvae.core.precision import GENERATION_DTYPE  # noqa: E402
from cvae.core.training import optimizer_device_options  # noqa: E402
from cvae.families.lab4_2024.data import LabData  # noqa: E402
from cvae.families.lab4_2024.step import generate  # noqa: E402
from cvae.families.lab4_2024.train import TrainConfig, Trainer, build_optimizer  # noqa: E402

TINY = dict(F_dim=16, L_dim=8, N_dim=4, D_out_dim=16, frame_H=8, frame_W=8, train_vi_len=4, val_vi_len=5,
            batch_size=2, num_epoch=1, channels_last=False, seed=3)


def _random_data(seed: int = 0) -> LabData:
    g = torch.Generator().manual_seed(seed)
    make = lambda n: torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g)  # noqa: E731
    return LabData(make(12), make(12), make(6), make(6))


def test_cuda_optimizers_avoid_host_syncs_and_adam_is_fused_everywhere():
    assert optimizer_device_options("ASGD", "cuda") == {"capturable": True}
    assert optimizer_device_options("SGD", "cuda") == {}
    for device in ("cuda", "cpu"):  # Adam's fused kernel: one call for all parameters (bench/adam_fused.py)
        assert optimizer_device_options("Adam", device) == {"fused": True}
        assert optimizer_device_options("AdamW", device) == {"fused": True}
    for name in ("ASGD", "Adamax", "SGD", "RMSprop"):
        assert optimizer_device_options(name, "cpu") == {}
    # the options reach the constructor (built here on CPU parameters; the step runs in the CUDA tests)
    params = [torch.nn.Parameter(torch.zeros(3))]
    asgd = build_optimizer(TrainConfig(**TINY, optimizer="ASGD"), params, "cuda")
    assert asgd.defaults["capturable"] is True
    adam = build_optimizer(TrainConfig(**TINY, optimizer="Adam"), params, "cuda")
    assert adam.defaults["fused"] is True
    assert build_optimizer(TrainConfig(**TINY, optimizer="AdamW"), params, "cpu").defaults["fused"] is True
    assert not build_optimizer(TrainConfig(**TINY, optimizer="ASGD"), params, "cpu").defaults["capturable"]


def test_compiling_trainer_limits_inductor_to_its_thread_share():
    import torch._inductor.config as inductor_config

    before, threads = inductor_config.compile_threads, torch.get_num_threads()
    try:
        inductor_config.compile_threads = 32
        Trainer(TrainConfig(**TINY, precision="fp32", compile=True, torch_threads=1), _random_data())
        assert inductor_config.compile_threads == 1  # set at construction, before any compile
    finally:
        inductor_config.compile_threads = before
        torch.set_num_threads(threads)


def test_validation_generates_in_fp32_when_training_in_bf16():
    assert GENERATION_DTYPE == torch.float32
    trainer = Trainer(TrainConfig(**TINY, precision="bf16"), _random_data())
    trainer.run_epoch()
    psnr, _ = trainer.validate()
    # the same generation by hand in fp32, from the same weights and noise
    model = trainer.model.eval()
    target = trainer.val_target.float() / 255
    labels = trainer._val_labels.float().div(255).unsqueeze(0)
    with torch.inference_mode():
        pred = generate(model, target[:1], labels, generator=torch.Generator().manual_seed(TINY["seed"]))[0]
    assert torch.equal((pred.clamp(0, 1) * 255).round().to(torch.uint8)[1:], trainer.last_prediction[1:])
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        pred16 = generate(model, target[:1], labels, generator=torch.Generator().manual_seed(TINY["seed"]))[0]
    assert not torch.equal(pred16.float(), pred.float())  # bf16 would have given other numbers
