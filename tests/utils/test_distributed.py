"""This process's rank on its node, from the launcher's environment."""
import pytest

from gan.utils.distributed import local_rank


@pytest.mark.parametrize("variables, rank", [
    ({}, 0),
    ({"SLURM_LOCALID": "2"}, 2),  # srun
    ({"LOCAL_RANK": "3"}, 3),  # torchrun, Lightning's own launcher
    # torchrun inside a one-task SLURM step: srun's SLURM_LOCALID is 0 for every process torchrun starts, the rank is
    # torchrun's (a mutation audit: SLURM_LOCALID read first made every process local rank 0)
    ({"LOCAL_RANK": "1", "SLURM_LOCALID": "0"}, 1),
])
def test_local_rank_prefers_the_launcher_closest_to_the_process(monkeypatch, variables, rank):
    for name in ("LOCAL_RANK", "SLURM_LOCALID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert local_rank() == rank
