"""Periodic evaluation during training: the metric suite every N generator steps, logged as ``val/<metric>``."""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Mapping

import lightning.pytorch as pl
import torch
from omegaconf import DictConfig, OmegaConf

from gan.metrics import MetricSuite
from gan.metrics.registry import logged_directions
from gan.metrics.cache import data_identity, feature_code
from gan.nets.base import eval_mode
from gan.utils.json_values import json_safe
from gan.utils.logging import log_scalars, update_summary
from gan.utils.steps import interval_crossed

log = logging.getLogger("gan")


def check_metrics_fit(config: Mapping, datamodule, num_classes: int | None) -> None:
    """What :class:`MetricsCallback` checks when training starts (the data's kind, a conditional generator),
    checked before it is built: building it loads its metrics' feature networks, and a missing weights file was
    the first thing said of ``metrics=[fid]`` on 2D points (a download of ~100 MB, then the real refusal)."""
    config = OmegaConf.to_container(config, resolve=True) if isinstance(config, DictConfig) else dict(config)
    if int(config.get("every_n_generator_steps") or 0) > 0:
        suite = MetricSuite.from_config(config, with_extractors=False)
        suite.check_data(datamodule)
        suite.check_generator(num_classes)


class MetricsCallback(pl.Callback):
    """Every ``every_n_generator_steps`` generator steps, score the sampling generator (the EMA copy when
    EMA is on, in eval mode, fixed latent codes) with the metrics of ``config`` (the ``metrics`` group).

    Values are logged as ``val/<name>`` at the generator step they were scored at (and put in
    ``trainer.callback_metrics``, so a checkpoint callback can monitor them) and appended, with the
    protocol that produced them, to ``<dirpath>/metrics.jsonl``. Under DDP every rank draws and extracts
    its share of the samples, rank 0 computes the values and every rank logs them. The schedule (the step
    last scored) and the history are saved in checkpoints, so a resumed run scores at the same steps.
    """

    def __init__(self, config: Mapping, dirpath: str | None = None):
        config = OmegaConf.to_container(config, resolve=True) if isinstance(config, DictConfig) else dict(config)
        self.every = int(config.get("every_n_generator_steps") or 0)
        # built here, i.e. before training starts, so a missing weights file fails at once; not at all when
        # nothing is scored during training (interval 0: the data's metrics are for evaluate.py)
        self.suite = MetricSuite.from_config(config) if self.every > 0 else None
        self.dirpath = Path(dirpath) if dirpath else None
        self._higher_is_better = logged_directions([m.name for m in self.suite.metrics]) if self.suite is not None else {}
        self._last_scored: int | None = None
        self.history: list[dict[str, Any]] = []
        #: records of the history scored before this fit (a resumed run's: restored from its checkpoint)
        self._records_before_fit = 0

    @property
    def batch_end_every_n_generator_steps(self) -> int:
        """The cadence it tests at training batch ends (gan/batching.py fits the batches to it); 0: never."""
        return self.every if self.suite is not None and self.suite.metrics else 0

    def setup(self, trainer, pl_module, stage: str) -> None:
        if self.suite is not None and trainer.datamodule is not None:
            self.suite.check_data(trainer.datamodule)
            self.suite.check_generator(getattr(pl_module.sampling_generator, "num_classes", None))
            feature_code(trainer.datamodule)  # the real-feature cache's key: the code as imported, hashed now

    def on_train_start(self, trainer, pl_module) -> None:
        if self.suite is not None:
            self.suite.to(pl_module.device)
        self._records_before_fit = len(self.history)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = pl_module.generator_steps
        if self.suite is not None and self.suite.metrics and interval_crossed(step, self._last_scored, self.every):
            self.score(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        step = pl_module.generator_steps
        if self.suite is not None and self.suite.metrics and self._last_scored != step and trainer.is_global_zero:
            # said, not done: a score here would add a row the same run resumed past this step does not have
            last = f", last at generator step {self._last_scored}" if self._last_scored is not None else ", never in this run"
            from gan.callbacks.checkpoint import final_checkpoint

            saved = final_checkpoint(trainer, pl_module)
            how = f"; score it with: python evaluate.py ckpt_path={saved}" if saved is not None else ""
            healthy = diverged_and_kept(trainer)
            if healthy is not None:  # the final weights are what diverged (an audit found the hint pointing at them)
                how = f"; the run diverged: score its last healthy checkpoint with: python evaluate.py ckpt_path={healthy}" \
                    if healthy else "; the run diverged before any checkpoint was saved"
            log.info("The final generator (generator step %d) was not scored (metrics every %d generator steps%s)%s",
                     step, self.every, last, how)

    def score(self, trainer, pl_module) -> dict[str, float]:
        step = self._last_scored = pl_module.generator_steps
        # every rank takes part (its share of the samples); all get rank 0's values. One switch to eval mode for
        # all of the batches (each batch's sample() then finds it set)
        with eval_mode(pl_module.sampling_generator) as generator:
            values, protocol = self.suite.evaluate_generator(generator, trainer.datamodule,
                                                             data_identity((pl_module.run_config or {}).get("data")))
        if self.history and self.history[-1].get("protocol") == protocol:
            # the same protocol as the last record's, as within a run: one object, which the checkpoint's pickle then
            # stores once (a soak audit: the history grew every checkpoint by 423 bytes per evaluation, half of it
            # the protocol again; a toy run's last.ckpt grew from 0.16 to 1.39 MB over 2,948 evaluations)
            protocol = self.history[-1]["protocol"]
        record = {"generator_step": step, "global_step": trainer.global_step, "values": values, "protocol": protocol}
        if trainer.is_global_zero:
            self._write(record)
            log.info("generator step %d: %s", step, ", ".join(f"{k}={v:.4g}" for k, v in values.items()))
        self.history.append(record)
        logged = {f"val/{name}": float(value) for name, value in values.items()}
        # to the loggers now, at this generator step: through self.log they waited for Lightning's next logging
        # step (a score between two was written at the wrong step or not at all) and were written again at every
        # logging step after it (the endless epoch never resets them), as if scored there (an audit)
        log_scalars(trainer, logged, step, higher_is_better=self._higher_is_better)  # W&B's summary keeps each one's best
        if self._records_before_fit:
            update_summary(trainer.loggers, self.best_of_the_run(logged))
        # where best.ckpt's monitor and train()'s returned metrics (a sweep's objective) read them
        # float64: a float32 tensor rounded the value a sweep optimizes and summary.csv shows (1658.2301025 for
        # 1658.2301556, an audit)
        trainer.callback_metrics.update({name: torch.tensor(value, dtype=torch.float64) for name, value in logged.items()})
        return values

    def best_of_the_run(self, logged: Mapping[str, float]) -> dict[str, dict[str, float]]:
        """The W&B summary of the values just ``logged`` that have a direction: the best over the whole run's history
        (earlier starts included) beside the last, as W&B keeps them (``{"min": ..., "last": ...}``). W&B computes the
        best of each start of the process alone, so a resumed run's summary, which its last offline piece uploads,
        held the last piece's best (an audit: max 0.624 where the first piece had reached 0.9284)."""
        summary = {}
        for name, last in logged.items():
            if name not in self._higher_is_better:
                continue
            higher, key = self._higher_is_better[name], name.removeprefix("val/")
            scored = [float(record["values"][key]) for record in self.history if key in record.get("values", {})]
            finite = [value for value in scored if math.isfinite(value)]
            if finite:
                summary[name] = {"max" if higher else "min": max(finite) if higher else min(finite), "last": last}
        return summary

    # ------------------------------------------------------------------------------- checkpointed state
    def state_dict(self) -> dict[str, Any]:
        return {"last_scored": self._last_scored, "history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._last_scored = state_dict.get("last_scored")
        self.history = list(state_dict.get("history", []))

    def _write(self, record: dict[str, Any]) -> None:
        if self.dirpath is None:
            return
        self.dirpath.mkdir(parents=True, exist_ok=True)
        with open(self.dirpath / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(json_safe(record), allow_nan=False) + "\n")  # strict JSON: NaN as "nan"


def diverged_and_kept(trainer) -> str | None:
    """When the health check stopped the run for divergence: the last healthy checkpoint it kept ("" when none had
    been saved); None otherwise."""
    from gan.callbacks.gan_health import stop_event

    event = stop_event(trainer)
    if event is None or event["kind"] != "divergence":
        return None
    return event.get("last_healthy_checkpoint") or ""
