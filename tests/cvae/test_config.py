import pytest

from cvae.families.lab4_2024.config import ConfigError, TrainConfig


def test_template_defaults():
    cfg = TrainConfig()
    assert (cfg.lr, cfg.batch_size, cfg.num_epoch, cfg.train_vi_len, cfg.val_vi_len) == (1e-3, 2, 70, 16, 630)
    assert (cfg.frame_H, cfg.frame_W, cfg.F_dim, cfg.L_dim, cfg.N_dim, cfg.D_out_dim) == (32, 64, 128, 32, 12, 192)
    assert (cfg.tfr, cfg.tfr_sde, cfg.tfr_d_step, cfg.kl_anneal_type, cfg.kl_anneal_cycle, cfg.kl_anneal_ratio) == (1.0, 10, 0.1, "Cyclical", 10, 1.0)
    assert (cfg.milestones, cfg.gamma, cfg.grad_clip, cfg.fast_train, cfg.fast_partial, cfg.fast_train_epoch) == ([2, 5], 0.1, 1.0, False, 0.4, 5)
    # the template's function and loader: no output activation, LeakyReLU(True) = slope 1.0, fixed order
    assert (cfg.output_activation, cfg.leaky_slope, cfg.shuffle, cfg.drop_last) == ("none", 1.0, False, True)


def test_aliases_and_yaml_null_kl_type():
    assert TrainConfig(kl_anneal_type="Cyclic").kl_anneal_type == "Cyclical"
    assert TrainConfig.from_dict({"kl_anneal_type": None}).kl_anneal_type == "None"


def test_int_accepted_for_float_and_round_trip():
    cfg = TrainConfig.from_dict({"lr": 1, "num_epoch": 3.0})
    assert cfg.lr == 1.0 and isinstance(cfg.num_epoch, int)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("values,fragment", [
    ({"learning_rate": 0.1}, "unknown TrainConfig field 'learning_rate'"),
    ({"batchsize": 4}, "did you mean 'batch_size'"),
    ({"batch_size": "4"}, "batch_size is '4', but must be an integer"),
    ({"batch_size": True}, "batch_size is True, but must be an integer"),
    ({"lr": "fast"}, "lr is 'fast', but must be a number"),
    ({"fast_train": 1}, "fast_train is 1, but must be true or false"),
    ({"leaky_slope": -0.1}, "leaky_slope is -0.1, but must be >= 0"),
    ({"shuffle": "yes"}, "shuffle is 'yes', but must be true or false"),
    ({"milestones": [2, "x"]}, "milestones"),
    ({"batch_size": 0}, "batch_size is 0, but must be >= 1"),
    ({"lr": 0}, "lr is 0.0, but must be > 0"),
    ({"lr": -1e-3}, "must be > 0"),
    ({"train_vi_len": 1}, "train_vi_len is 1, but must be >= 2"),
    ({"tfr": 1.5}, "tfr is 1.5, but must be in [0, 1]"),
    ({"kl_anneal_ratio": 0}, "kl_anneal_ratio is 0.0, but must be > 0"),
    ({"kl_anneal_ratio": -1.2}, "must be > 0"),
    ({"kl_anneal_type": "Linear"}, "kl_anneal_type is 'Linear'"),
    ({"optimizer": "Adamm"}, "optimizer is 'Adamm'"),
    ({"frame_H": 3}, "frame_H and frame_W must be >= 4"),
    ({"F_dim": 20}, "F_dim is 20, but must be a positive multiple of 8"),
    ({"N_dim": 6}, "N_dim is 6"),
    ({"precision": "fp8"}, "precision is 'fp8'"),
    ({"torch_threads": 0}, "torch_threads is 0, but must be an integer >= 1 (or null for torch's default)"),
    ({"torch_threads": -2}, "torch_threads is -2, but must be an integer >= 1"),
    ({"torch_threads": "2"}, "torch_threads is '2', but must be an integer or null"),
    ({"torch_threads": True}, "torch_threads is True, but must be an integer or null"),
    ({"torch_threads": 1.5}, "torch_threads is 1.5, but must be an integer or null"),
])
def test_bad_values_name_the_key(values, fragment):
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict(values, source="my.yaml")
    assert fragment in str(err.value)
    assert str(err.value).startswith("my.yaml: ")


def test_from_yaml_names_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: [1\n")
    with pytest.raises(ConfigError, match="c.yaml: not valid YAML"):
        TrainConfig.from_yaml(path)
    path.write_text("num_epoch: 3\nkl_anneal_type: None\n")
    cfg = TrainConfig.from_yaml(path)
    assert cfg.num_epoch == 3 and cfg.kl_anneal_type == "None"
    with pytest.raises(ConfigError, match="missing.yaml: cannot read"):
        TrainConfig.from_yaml(tmp_path / "missing.yaml")


def test_torch_threads_default_null_and_ints(tmp_path):
    assert TrainConfig().torch_threads is None
    assert TrainConfig.from_dict({"torch_threads": None}).torch_threads is None
    assert TrainConfig.from_dict({"torch_threads": 1}).torch_threads == 1
    threads = TrainConfig.from_dict({"torch_threads": 4.0}).torch_threads  # like every int field
    assert threads == 4 and isinstance(threads, int)
    path = tmp_path / "best.yaml"
    path.write_text("torch_threads: null\n")
    assert TrainConfig.from_yaml(path).torch_threads is None
    path.write_text("torch_threads: 2\n")
    cfg = TrainConfig.from_yaml(path)
    assert cfg.torch_threads == 2 and TrainConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("value", [0, True, "1"])
def test_torch_threads_checked_on_construction(value):
    # not only through from_dict: TrainConfig(...) itself refuses it
    with pytest.raises(ConfigError, match="torch_threads is"):
        TrainConfig(torch_threads=value)


def test_the_templates_argument_names_are_accepted():
    # Trainer.py's --optim is the field optimizer
    assert TrainConfig.from_dict({"optim": "AdamW"}).optimizer == "AdamW"
    with pytest.raises(ConfigError, match="optim and optimizer are the same field"):
        TrainConfig.from_dict({"optim": "AdamW", "optimizer": "Adam"})


def test_a_ratio_above_1_is_the_older_templates_slower_rise():
    from cvae.core.schedules import describe_kl, kl_beta

    assert TrainConfig(kl_anneal_ratio=2.0).kl_anneal_ratio == 2.0  # older templates' default
    betas = [kl_beta(e, kind="Monotonic", num_epoch=10, cycle=1, ratio=2.0) for e in range(10)]
    assert betas == sorted(betas) and betas[0] == 0.0 and 0.4 < betas[-1] < 0.5  # rises at half the rate
    assert "stops the rise at 1/ratio" in describe_kl(kind="Monotonic", num_epoch=10, cycle=1, ratio=2.0)


def test_the_templates_other_arguments_in_a_config_are_ignored_with_a_warning(capsys):
    cfg = TrainConfig.from_dict({"num_workers": 4, "DR": "../LAB4_Dataset", "lr": 2e-3}, source="cfg.yaml")
    assert cfg.lr == 2e-3
    err = capsys.readouterr().err
    assert "cfg.yaml: num_workers is the template's Trainer.py argument, ignored" in err and "DR is" in err
