"""The W&B helpers act on rank 0's run only: other DDP ranks hold Lightning's stand-in experiment."""
from lightning.pytorch.utilities import rank_zero_only


def test_the_summary_alerts_and_axes_leave_other_ranks_alone(monkeypatch, tmp_path):
    """Rank 1's experiment is Lightning's stand-in, whose summary is a function: a resumed DDP run's summary update
    ended it with an AttributeError there (an audit)."""
    from lightning.pytorch.loggers import WandbLogger

    from gan.utils.logging import alert, plot_against_generator_steps, update_summary, wandb_runs

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    logger = WandbLogger(save_dir=str(tmp_path), offline=True)
    assert callable(logger.experiment.summary)  # the stand-in (no W&B run is started on this rank)
    assert wandb_runs([logger]) == []
    update_summary([logger], {"val/fid": {"min": 1.0, "last": 2.0}})
    alert([logger], "GAN health: divergence", "text")
    plot_against_generator_steps([logger], ["val/fid"], {"val/fid": False})
    assert not (tmp_path / "wandb").exists()
