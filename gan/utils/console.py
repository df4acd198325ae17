"""Keeping the console to what a user can act on: third-party notices silenced where they start."""
from __future__ import annotations

import logging
import warnings


class _DropMessages(logging.Filter):
    def __init__(self, *fragments: str):
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not any(fragment in message for fragment in self.fragments)


def quiet_third_party_notices() -> None:
    """Silence notices printed at every start that say nothing about the run:

    - Lightning's advertisement for its hosted logger (``💡 Tip: ... litlogger``), dropped at the logger
      that emits it;
    - torch's deprecation of ``LeafSpec``, which Lightning's pytree helper instantiates for every batch
      (nothing a user of Lightning 2.6 can change);
    - Lightning's checkpoint warnings that a GAN run's checkpoints make meaningless (below).

    W&B's "anonymous setting" warning comes from an argument Lightning passes; see
    :func:`gan.utils.logging.prepare_loggers`."""
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropMessages) for f in rank_zero.filters):
        rank_zero.addFilter(_DropMessages("litlogger"))
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning)
    # a GAN checkpoint holds the state after the iteration's updates, which is what resuming needs
    warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization and every_n_train_steps")
    # every resume into a new run directory (the README's way; ckpt_path=last resumes in place): the checkpoint
    # callbacks' best scores start anew there, as the README says; the warning came on stderr at each resume
    warnings.filterwarnings("ignore", message="The dirpath has changed from")
    # every ckpt_path=last resume in place: a checkpoint folder that holds files is one this run wrote, since a folder
    # of another run's is refused before the run starts (gan/job.py), so the warning said nothing (a README walk-through)
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
    # a resume whose options changed a callback's settings: train.py says which saved states are not restored and
    # what that means; Lightning asked to "add the following callbacks", which the run has, with other settings
    warnings.filterwarnings("ignore", message="Be aware that when using `ckpt_path`, callbacks used to create the checkpoint")


def lightning_logs_through_root() -> None:
    """Send Lightning's own log lines (seed, devices, checkpoint restore ...) through the root logger.

    Lightning gives its logger a stderr handler of its own when the root logger had none at import, which
    is the case under Hydra (it configures logging later). Once the root logger has handlers (Hydra's
    console and ``<run dir>/train.log``), Lightning's rule is to propagate to them: applied here, its lines
    land in the run's log file and stderr keeps only warnings and errors."""
    if not logging.getLogger().hasHandlers():
        return
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in [h for h in logger.handlers if type(h) is logging.StreamHandler]:
            logger.removeHandler(handler)
        logger.propagate = True


def _below_error(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.ERROR


def console_once_per_run() -> None:
    """On a DDP process other than rank 0, the console shows errors only: every rank runs the same code, so each
    info and warning line (the batching, the resume, a checkpoint skipped, a signal) came once per process (an
    audit counted them with three). The process's own log file (``train_ddp_process_<rank>.log``) keeps them all."""
    from gan.utils.distributed import is_rank_zero

    if is_rank_zero():
        return
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler) \
                and _below_error not in handler.filters:
            handler.addFilter(_below_error)
