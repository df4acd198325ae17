"""A checkpoint that cannot be read is one line saying why; an output folder that cannot be written is refused
before anything is built."""
from __future__ import annotations

import collections

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from gan.utils.checkpoint import load_checkpoint
from gan.utils.config import check_run_options
from gan.utils.errors import CheckpointError, ConfigError


def written(path, payload) -> str:
    torch.save(payload, path)
    return str(path)


def flip_a_byte_of_the_weights(path) -> None:
    written(path, {"state_dict": {"w": torch.zeros(4000)}, "run_config": {}})
    data = bytearray(path.read_bytes())
    start = data.index(bytes(16000))  # the 4,000 float zeros, stored uncompressed
    data[start + 8000] ^= 0xFF
    path.write_bytes(bytes(data))
    assert torch.load(path, weights_only=True)["state_dict"]["w"].ne(0).sum() == 1  # torch itself reads it


@pytest.mark.parametrize("name,make,message", [
    ("garbage.ckpt", lambda p: p.write_bytes(b"garbage"),
     r"not a PyTorch checkpoint \(it starts with neither a zip archive's nor a pickle's signature; 7 bytes\)"),
    ("empty.ckpt", lambda p: p.write_bytes(b""), r"not a PyTorch checkpoint .*; 0 bytes\)"),
    # the first 4,000 bytes of a real checkpoint: torch itself only says "OSError: [Errno 22] Invalid argument"
    ("cut.ckpt", lambda p: (written(p, {"state_dict": {"w": torch.randn(4000)}, "run_config": {}}),
                            p.write_bytes(p.read_bytes()[:4000])),
     r"a zip archive without its end \(4000 bytes, no central directory\): the file was not written or copied completely"),
    # torch's own message suggests weights_only=False, which would run what a foreign file holds
    ("numpy.ckpt", lambda p: written(p, {"state_dict": {}, "run_config": {}, "x": np.zeros(2)}),
     r"it holds objects a weights-only load refuses \(numpy\.\S+\); this framework's checkpoints hold tensors"),
    ("foreign.ckpt", lambda p: written(p, {"counts": collections.Counter()}), r"is not a checkpoint of this framework"),
    # a byte changed in the middle of a tensor's record: torch read it without a word (an audit: wrong EMA weights)
    ("flipped.ckpt", flip_a_byte_of_the_weights,
     r"its data is damaged \(flipped/data/0 fails its zip checksum; \d+ bytes\): the file changed after it was written"),
])
def test_an_unreadable_checkpoint_is_one_line_saying_why(tmp_path, name, make, message):
    path = tmp_path / name
    make(path)
    with pytest.raises(CheckpointError, match=message) as caught:
        load_checkpoint(path)
    assert "\n" not in str(caught.value) and "weights_only=False" not in str(caught.value)


def test_a_checkpoint_of_this_framework_still_loads(tmp_path):
    path = written(tmp_path / "fine.ckpt", {"state_dict": {"w": torch.ones(2)}, "run_config": {"seed": 1}})
    assert load_checkpoint(path)["run_config"] == {"seed": 1}


def test_an_output_folder_below_a_file_is_refused_and_a_new_one_is_created(tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ConfigError, match=r"^paths.output_dir=.*a_file/run: cannot write there \(Not a directory\); "
                                          r"expected a folder this user can create and write$"):
        check_run_options(OmegaConf.create({"seed": 0, "generator_steps": 1, "paths": {"output_dir": str(tmp_path / "a_file" / "run")}}))
    check_run_options(OmegaConf.create({"seed": 0, "generator_steps": 1, "paths": {"output_dir": str(tmp_path / "new" / "run")}}))
    assert (tmp_path / "new" / "run").is_dir()


def test_an_optimizer_state_of_another_shape_or_parameter_count_is_refused_before_it_is_loaded():
    """Checked against the parameters, shape by shape (a transposed moment has the same number of entries, which a
    mutation to a size check let through) and count by count (a state for fewer parameters too)."""
    from gan.utils.checkpoint import check_optimizer_states_fit

    weight, bias = torch.zeros(2, 3), torch.zeros(3)

    def checkpoint(moments, params=(0, 1)):
        state = {"state": {i: {"step": torch.tensor(1.0), "exp_avg": m} for i, m in enumerate(moments)},
                 "param_groups": [{"params": list(params)}]}
        return {"optimizer_states": [state, state]}

    fits = checkpoint([torch.zeros(2, 3), torch.zeros(3)])
    check_optimizer_states_fit(fits, "run.ckpt", [[weight, bias], [weight, bias]])
    with pytest.raises(CheckpointError, match=r"parameter 0: exp_avg is \[3, 2\] there, the parameter \[2, 3\] here"):
        check_optimizer_states_fit(checkpoint([torch.zeros(3, 2), torch.zeros(3)]), "run.ckpt", [[weight, bias], [weight, bias]])
    with pytest.raises(CheckpointError, match=r"its generator optimizer state is for 1 parameters, this run's generator has 2"):
        check_optimizer_states_fit(checkpoint([torch.zeros(2, 3)], params=(0,)), "run.ckpt", [[weight, bias], [weight, bias]])
