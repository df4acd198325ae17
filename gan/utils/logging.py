"""Logger-specific helpers, used by callbacks and train.py so the module stays logger-agnostic."""
from __future__ import annotations

import logging
import netrc
import os
import weakref
from pathlib import Path
from typing import Iterable, Mapping

from omegaconf import ListConfig

log = logging.getLogger("gan")


def wandb_has_credentials() -> bool:
    """True when an API key is available without asking: WANDB_API_KEY or `wandb login`'s netrc entry."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].rstrip("/")
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def wandb_offline() -> bool:
    """Offline unless the user asked for online (WANDB_MODE=online) or is logged in."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in {"offline", "dryrun", "disabled"}:
        return True
    if mode == "online":
        return False
    return not wandb_has_credentials()


#: the package each of Lightning's loggers imports when it is built (TensorBoard's takes either)
LOGGER_PACKAGES = {"WandbLogger": ("wandb",), "TensorBoardLogger": ("tensorboard", "tensorboardX"),
                   "MLFlowLogger": ("mlflow",), "CometLogger": ("comet_ml",), "NeptuneLogger": ("neptune",)}
#: characters W&B refuses in a project name (wandb.init raises a UsageError, after the model was built)
WANDB_PROJECT_FORBIDDEN = "/\\#?%:"


def check_logger_options(group: Mapping | None) -> None:
    """Before anything is built: each logger's package is installed, its ``save_dir`` can be written and a W&B
    project name is one W&B takes. Each failed with a traceback, the last two after the model and data were
    built (found by an audit)."""
    import importlib.util

    from gan.utils.config import check_writable_folder
    from gan.utils.errors import ConfigError

    for name, node in (group or {}).items():
        if not isinstance(node, Mapping) or not node.get("_target_"):
            continue
        kind = str(node["_target_"]).rsplit(".", 1)[-1]
        packages = LOGGER_PACKAGES.get(kind, ())
        if packages and not any(importlib.util.find_spec(package) for package in packages):
            raise ConfigError(f"logger.{name}: {kind} needs the package {' or '.join(packages)}, which is not installed "
                              f"(pip install {packages[0]}), or choose another logger (logger=csv)")
        if node.get("save_dir"):
            check_writable_folder(str(node["save_dir"]), f"logger.{name}.save_dir")
        project = node.get("project")
        if kind == "WandbLogger" and project and any(c in str(project) for c in WANDB_PROJECT_FORBIDDEN):
            raise ConfigError(f"logger.{name}.project={project}: W&B project names cannot contain any of "
                              f"{' '.join(WANDB_PROJECT_FORBIDDEN)}")


def prepare_loggers(loggers: Iterable) -> None:
    """Lightning's WandbLogger passes ``anonymous=None`` to ``wandb.init``, which W&B answers at every
    start with a warning that the (deprecated) setting has no effect; leave the unset argument out. The
    config's ``settings`` (``logger.wandb.settings``) reaches ``wandb.init`` as a plain dict: W&B takes a dict
    or its own Settings, and ignored Hydra's DictConfig."""
    from lightning.pytorch.loggers import WandbLogger
    from omegaconf import DictConfig, OmegaConf

    for logger in loggers:
        if not isinstance(logger, WandbLogger):
            continue
        if logger._wandb_init.get("anonymous", "") is None:
            del logger._wandb_init["anonymous"]
        settings = logger._wandb_init.get("settings")
        if isinstance(settings, DictConfig):
            logger._wandb_init["settings"] = OmegaConf.to_container(settings, resolve=True)


def run_hyperparameters(module) -> dict:
    """What the loggers get as the run's config (W&B's config, TensorBoard's hparams, the CSV logger's hparams.yaml):
    the resolved run config, the networks' parameter counts and, where this process records it, the code, libraries
    and device (``gan.utils.provenance.summary``: columns to filter and group runs by)."""
    from gan.utils.provenance import summary

    logged = {**module.run_config, "parameters": {name: sum(p.numel() for p in getattr(module, name).parameters())
                                                  for name in ("generator", "discriminator")}}
    if module.provenance:
        logged["provenance"] = summary(module.provenance[-1])
    return logged


def logger_step(trainer) -> int:
    """The x-position Lightning gives the module's own ``self.log`` values in TensorBoard and CSV (GAN iterations:
    Lightning's count of batches that stepped, which :func:`gan.batching.count_iteration` advances once per
    iteration; not ``global_step``); everything written outside ``self.log`` uses it too, so
    images and scalars of one generator step line up."""
    return trainer.fit_loop.epoch_loop._batches_that_stepped  # what Lightning's logger connector uses; no public accessor


def log_image(trainer, key: str, path: str | Path, step: int | None = None, generator_step: int | None = None,
              caption: str | None = None) -> None:
    """Send a saved PNG to every active logger that shows images (W&B, TensorBoard), at ``step`` (default: now,
    :func:`logger_step`). W&B's row also carries ``generator_step`` (plotted against it, as every scalar is; the
    images sat on Lightning's step axis, an audit) and the image its ``caption``."""
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

    step = logger_step(trainer) if step is None else step
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            import wandb

            row = {key: [wandb.Image(str(path), caption=caption)]}
            if generator_step is not None:
                row[GENERATOR_STEP] = float(generator_step)
                plot_against_generator_steps([logger], [key])
            logger.log_metrics(row, step=step)
        elif isinstance(logger, TensorBoardLogger):
            import numpy as np
            from PIL import Image

            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
            logger.experiment.add_image(key, pixels, global_step=step, dataformats="HWC")


def finish_loggers(loggers: Iterable, exit_code: int = 0) -> None:
    """Close the W&B run (so the next multirun job starts its own) with the process's ``exit_code`` and say how to
    upload an offline run. A run ended by a signal (130, 143, 138) or an error is recorded as such: its record held no
    exit code and read as a clean finish (an audit)."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            run = logger.experiment
            run_dir = Path(run.dir).parent
            offline = bool(getattr(run.settings, "_offline", False)) or run.settings.mode == "offline"
            run.finish(exit_code=int(exit_code))
            if offline:
                # finish() can return before wandb-core has written the offline .wandb file (seen under CPU
                # load: a 7-byte file); teardown waits for it, so `wandb sync` or a reader finds it complete
                import wandb

                wandb.teardown()
                pieces = offline_pieces(run_dir, run.id)
                if len(pieces) > 1:
                    log.info("W&B ran offline. To upload this run (%d pieces, one per start of the resumed run; W&B syncs "
                             "the pieces of one run in order of their start): wandb sync %s", len(pieces), " ".join(map(str, pieces)))
                else:
                    log.info("W&B ran offline. To upload this run: wandb sync %s", run_dir)


def offline_pieces(run_dir: Path, run_id: str) -> list[Path]:
    """The offline directories W&B wrote for run ``run_id`` beside ``run_dir``, oldest first: a resumed run writes
    one per start (``offline-run-<date>_<time>-<id>``), and the hint named only the last (an audit)."""
    pieces = sorted(path for path in run_dir.parent.glob(f"offline-run-*-{run_id}") if path.is_dir())
    return pieces if run_dir in pieces else [*pieces, run_dir]


# ------------------------------------------------------------------------------------------ dashboards
#: logged with every scalar row so dashboards can plot against generator updates (the unit of
#: ``generator_steps``) instead of Lightning's logging step, which counts GAN iterations
GENERATOR_STEP = "train/generator_step"

_axis_names: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def wandb_runs(loggers: Iterable) -> list:
    """The W&B runs behind the active loggers (empty when W&B is not among them, and on a DDP process other than rank
    0, whose experiment is Lightning's stand-in: its ``summary`` is a function, so a resumed DDP run's summary update
    ended the run with an AttributeError on rank 1 at its first evaluation, an audit)."""
    from lightning.pytorch.loggers import WandbLogger
    from lightning.pytorch.utilities import rank_zero_only

    if getattr(rank_zero_only, "rank", 0) != 0:
        return []
    return [logger.experiment for logger in loggers if isinstance(logger, WandbLogger)]


def plot_against_generator_steps(loggers: Iterable, names: Iterable[str], higher_is_better: Mapping[str, bool] | None = None) -> None:
    """``define_metric`` each name with the generator step as its x-axis, once per run; a name in
    ``higher_is_better`` (a metric's direction) also keeps its best value in the run summary beside its last
    (``<name>.min`` or ``.max``, a column of the runs table: the summary held the last value only, an audit).

    Exact names, not a ``train/*`` glob: Lightning already defines the glob ``*`` (x = its own step) and
    W&B resolves overlapping globs by definition order, so a second glob would never take effect.
    """
    goals = higher_is_better or {}
    for run in wandb_runs(loggers):
        defined = _axis_names.setdefault(run, set())
        if not defined:
            run.define_metric(GENERATOR_STEP)
            defined.add(GENERATOR_STEP)
        for name in sorted(set(names) - defined):
            # step_sync: rows written without the generator step (another callback's) reuse its last value
            best = {"summary": ("max" if goals[name] else "min") + ",last"} if name in goals else {}
            run.define_metric(name, step_metric=GENERATOR_STEP, step_sync=True, **best)
            defined.add(name)


def log_scalars(trainer, metrics: Mapping[str, float], generator_step: int, higher_is_better: Mapping[str, bool] | None = None) -> None:
    """Write scalars to every active logger now, outside Lightning's ``log_every_n_steps`` cadence.

    The x-position is the one Lightning gives the module's own ``self.log`` values (GAN iterations, not
    ``global_step``: :func:`logger_step`) so TensorBoard/CSV curves line up; the generator step rides along for W&B, and the
    directions in ``higher_is_better`` make W&B keep each such value's best (:func:`plot_against_generator_steps`).
    """
    if not trainer.loggers or not metrics:
        return
    row = {name: float(value) for name, value in metrics.items()}
    row[GENERATOR_STEP] = float(generator_step)
    plot_against_generator_steps(trainer.loggers, row, higher_is_better)
    step = logger_step(trainer)
    for logger in trainer.loggers:
        logger.log_metrics(row, step=step)


def alert(loggers: Iterable, title: str, text: str, level: str = "WARN") -> None:
    """A W&B alert (e-mail/Slack per the user's W&B settings) on every active W&B run."""
    for run in wandb_runs(loggers):
        run.alert(title=title[:63], text=text, level=level)


def update_summary(loggers: Iterable, values: Mapping[str, object]) -> None:
    """Values for the W&B run summary (the run table's columns)."""
    for run in wandb_runs(loggers):
        run.summary.update(dict(values))


# ------------------------------------------------------------------------------ run names and groups
#: overrides that say where a run writes or how it logs, not what it trains: left out of run names
_NAME_IGNORED_KEYS = {"model", "data", "logger", "callbacks", "paths", "hydra", "trainer.accelerator", "trainer.devices",
                      "ckpt_path", "cpu_threads"}
_NAME_IGNORED_PREFIXES = ("hydra.", "paths.", "logger.", "callbacks.")


def _hydra_config():
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def run_name(max_length: int = 96) -> str | None:
    """``<model>-<data>`` then the command-line overrides that change the experiment, e.g.
    ``wgan_gp-toy2d_grid seed=1 optimizer.generator.lr=1e-4``; None outside a Hydra run (W&B picks one)."""
    hydra = _hydra_config()
    if hydra is None:
        return None
    choices = hydra.runtime.choices
    name = "-".join(str(choices[group]) for group in ("model", "data") if choices.get(group))
    keys = [(o, o.split("=", 1)[0].lstrip("~+")) for o in hydra.overrides.task]
    overrides = [o for o, key in keys if key not in _NAME_IGNORED_KEYS and not key.startswith(_NAME_IGNORED_PREFIXES)]
    for override in overrides:  # whole overrides while they fit (a cut one read "ckpt_path", an audit)
        if len(name) + 1 + len(override) > max_length:
            break
        name = f"{name} {override}"
    return name.strip()[:max_length] or None


def run_group(task_name: str = "train") -> str | None:
    """One W&B group per Hydra multirun, ``<task_name>-<sweep directory name>``; None for single runs."""
    from hydra.types import RunMode

    hydra = _hydra_config()
    if hydra is None or hydra.mode != RunMode.MULTIRUN:
        return None
    return f"{task_name}-{Path(hydra.sweep.dir).name}"


def run_tags(tags: Iterable[str] | None) -> ListConfig:
    """The configured tags plus the variant, data and loss choices, so runs filter by them. A ListConfig, not a
    list: ``OmegaConf.resolve`` (Hydra's ``--cfg job --resolve``) refuses a plain list from a resolver with a traceback
    ("Value 'list' is not a supported primitive type")."""
    hydra = _hydra_config()
    chosen = [] if hydra is None else [str(hydra.runtime.choices[g]) for g in ("model", "data", "loss") if hydra.runtime.choices.get(g)]
    return ListConfig(list(dict.fromkeys([*(str(t) for t in tags or []), *chosen])))
