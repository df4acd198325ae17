"""Evaluate a trained run, several runs, or a folder of generated images, with the same metric suite the
training callback uses.

``python evaluate.py ckpt_path=RUN/checkpoints/best.ckpt metrics=[fid,is,kid,prc] num_samples=10000``
``python evaluate.py ckpt_path=logs/train/multiruns/DATE_TIME seeds=[0,1,2]``   (every job, 3 latent seeds)
``python evaluate.py fake_path=my_samples/ data=cifar10 metrics=[fid,kid]``
``python evaluate.py ckpt_path=logs/train/multiruns/NEW compare_with=logs/train/multiruns/BASELINE``   (better or not?)

Writes ``report.json`` (values + protocol + checkpoint + config), ``samples.png`` (a grid, or a scatter over
the real modes for 2D data), ``interpolation.png`` (latent interpolation strips, image data) and ``nearest.png``
(fakes beside their nearest real images, image data) to the output directory. Several checkpoints (a glob or a
multirun directory in ``ckpt_path``) or latent seeds (``seeds``) give one entry per evaluation in ``runs`` and, per
metric, the mean, standard deviation and Student-t 95 % interval in ``summary`` (also printed as a table), over
the checkpoints (each the mean of its latent seeds) or, with one checkpoint, over its latent seeds; no pictures
then. ``compare_with`` (checkpoints of a baseline) adds, per metric, the difference of the means with its Welch
interval (training runs on each side) or paired t interval (one checkpoint on each side, seed by seed), p-value and
verdict (``comparison``).

Ctrl+C: the first stops the evaluation the usual way (KeyboardInterrupt once the running torch operation
returns; no report is written), a second one ends the process at once with status 130.
"""
from __future__ import annotations

import glob
import json
import logging
import os
import re
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

import gan  # noqa: F401  (registers the config resolvers)
from gan.data import check_data_module_class
from gan.data.errors import DatasetFormatError, DatasetNotFoundError
from gan.metrics import MetricSuite, image_folder_batches
from gan.metrics.cache import data_identity
from gan.metrics.registry import logged_directions, real_sample_indices
from gan.metrics.summary import compare_evaluations, format_comparison, format_table, summarize_evaluations
from gan.nets.base import eval_mode
from gan.utils.checkpoint import (generator_from_checkpoint, leaves, load_checkpoint, options_changed_since, run_config,
                                  run_folder, trained_generator_steps)
from gan.utils.config import PROJECT_ROOT, check_evaluate_options, top_level_keys_nothing_reads
from gan.utils.errors import (CheckpointError, ConfigError, DataError, composition_errors_in_one_line, exit_on_user_error,
                              refuse_training_options)
from gan.utils.instantiate import build
from gan.utils.json_values import json_safe
from gan.utils.provenance import (collect, describe_history, environment_differences, group_by_code, history_identity,
                                  write_diffs)
from gan.utils.targets import import_modules
from gan.visualize import class_grid, nearest_reals, save_image_grid, save_samples

log = logging.getLogger("gan")


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Scores the generator of ``cfg.ckpt_path`` (one checkpoint, a glob, or a multirun directory) at each
    latent seed of ``cfg.seeds``, or the images in ``cfg.fake_path``; returns the report."""
    with second_interrupt_aborts():
        return _evaluate(cfg)


def _evaluate(cfg: DictConfig) -> dict[str, Any]:
    if not cfg.get("ckpt_path") and not cfg.get("fake_path"):
        raise ConfigError("evaluate.py needs ckpt_path=RUN/checkpoints/<name>.ckpt (or a glob, or a multirun directory) "
                          "or fake_path=<folder of images> (with data=<name>)")
    import_modules(cfg.get("imports"))
    check_evaluate_options(cfg)
    checkpoint_paths = find_checkpoints(cfg.ckpt_path, cfg.get("ckpt_name") or "last.ckpt") if cfg.get("ckpt_path") else []
    check_one_checkpoint_per_run(checkpoint_paths, "ckpt_path", cfg.get("ckpt_path"))
    checkpoint = load_checkpoint(checkpoint_paths[0]) if checkpoint_paths else None
    train_cfg = run_config(checkpoint) if checkpoint is not None else None
    if train_cfg is not None:  # the run's own metrics, registered by its modules, before its selection is checked
        import_modules(train_cfg.get("imports"), option=f"{checkpoint_paths[0]}: its run's imports")
    use_thread_count(cfg.get("cpu_threads"), checkpoint)
    # the code that computes the values (the metrics' code; a checkpoint's own record says what trained it), read now:
    # files edited while a long evaluation runs are not what it runs
    evaluation = collect({"imports": OmegaConf.to_container(cfg, resolve=True).get("imports"),
                          "run": OmegaConf.to_container(train_cfg) if train_cfg is not None else None})
    data_cfg = data_to_score_against(cfg, train_cfg, checkpoint_paths[0] if checkpoint_paths else None)
    metrics_cfg = OmegaConf.to_container(cfg.metrics, resolve=True)
    if not metrics_cfg.get("compute") and train_cfg is not None and metrics_choice() != "none":
        # no metrics= given: the run's own selection (metrics=none: none, only the pictures)
        metrics_cfg["compute"] = OmegaConf.to_container(train_cfg.get("metrics", {}).get("compute", {}))
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    check_data_module_class(data_cfg.get("_target_"))
    datamodule = build(data_cfg)
    check_data_module_class(datamodule)  # what a factory function (a _target_ that is no class) returned
    if cfg.get("fake_path") and datamodule.kind != "image":  # before the folder is read
        raise ConfigError(f"fake_path={cfg.fake_path}: a folder is scored as image data, but data {datamodule.name} "
                          f"yields {datamodule.kind}; expected image data (e.g. data=digits)")
    if cfg.get("fake_path") and not metrics_cfg.get("compute") and metrics_choice() != "none":
        # a checkpoint lends its run's selection; a folder has none, and it scored nothing with status 0 (an audit)
        group = PROJECT_ROOT / "conf" / "metrics" / f"{datamodule.name}.yaml"
        example = f"metrics={datamodule.name}, the data's own selection" if group.is_file() else "metrics=[fid]"
        raise ConfigError(f"fake_path={cfg.fake_path}: a folder has no run whose metrics to use; expected metrics=... "
                          f"(e.g. {example})")
    # the selection against the data and every checkpoint before the metrics' feature networks are loaded (a
    # metric that cannot apply was reported as their missing weights), the data is prepared (it may download)
    # and the first checkpoint is scored
    # metrics.num_samples is ${num_samples} unless set itself: a count refused then names the option the user set
    set_at_top = OmegaConf.to_container(cfg.metrics, resolve=False).get("num_samples") == "${num_samples}"
    counts_named = {"num_samples_option": "num_samples" if set_at_top else "metrics.num_samples"}
    selection = MetricSuite.from_config(metrics_cfg, device=device, with_extractors=False, **counts_named)
    if cfg.get("fake_path"):
        try:
            selection.check_generator(None)
        except ConfigError as error:  # its message speaks of a model, and a folder has none
            raise ConfigError(f"fake_path={cfg.fake_path} (images without class labels): {error}") from None
    only_generator = check_checkpoints(checkpoint_paths, checkpoint, cfg, selection, datamodule, device)
    # after the generators' sample shape: data of another kind (points for images) was reported as a metric that
    # cannot score it, where the shape says what is wrong (an audit)
    selection.check_data(datamodule)
    seeds = [int(seed) for seed in cfg.get("seeds") or [cfg.seed]]
    baseline = checked_baseline(cfg, checkpoint_paths, checkpoint, len(seeds), selection, datamodule, device)
    suite = MetricSuite.from_config(metrics_cfg, device=device, progress=True, **counts_named)  # fails now if weights are missing
    prepare(datamodule, data_cfg, from_checkpoint=not cfg.get("data"))
    identity = data_identity(OmegaConf.to_container(data_cfg, resolve=True))
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {}
    if cfg.get("fake_path"):
        batches, count = image_folder_batches(cfg.fake_path, datamodule.sample_shape[0], suite.batch_size)
        suite.check_fake_count(count, f"fake_path={cfg.fake_path}")
        values, protocol = suite.evaluate(batches, datamodule, identity)
        report.update(fake_path=str(Path(cfg.fake_path).resolve()), fake_images=count, values=values)
    elif len(checkpoint_paths) == 1 and len(seeds) == 1 and baseline is None:
        generator = only_generator
        values, protocol = suite.evaluate_generator(generator, datamodule, identity, latent_seed=seeds[0])
        report.update(checkpoint=checkpoint_record(checkpoint_paths[0], checkpoint, generator), values=values,
                      pictures=draw(generator, datamodule, out, cfg, picture_title(checkpoint_paths[0], checkpoint, generator)))
    else:
        runs, protocol = evaluate_checkpoints(checkpoint_paths, checkpoint, only_generator, seeds, suite, datamodule,
                                              identity, cfg, device)
        summary = summarize_evaluations([(run["checkpoint"]["path"], run["values"]) for run in runs])
        report.update(runs=runs, summary=summary)
        log.info("%d evaluations (%s):\n%s", len(runs), what_repeats(len(checkpoint_paths), len(seeds)),
                 format_table(summary))
        if baseline is not None:
            baseline_runs, _ = evaluate_checkpoints(baseline.paths, baseline.first, baseline.only_generator, seeds,
                                                    suite, datamodule, identity, cfg, device)
            baseline_summary = summarize_evaluations([(run["checkpoint"]["path"], run["values"]) for run in baseline_runs])
            directions = {key.removeprefix("val/"): higher for key, higher in
                          logged_directions([metric.name for metric in suite.metrics]).items()}
            comparison = compare_evaluations([(run["checkpoint"]["path"], run["values"]) for run in runs],
                                             [(run["checkpoint"]["path"], run["values"]) for run in baseline_runs], directions)
            report.update(baseline={"runs": baseline_runs, "summary": baseline_summary}, comparison=comparison)
            log.info("baseline compare_with=%s, %d evaluations (%s):\n%s", cfg.compare_with, len(baseline_runs),
                     what_repeats(len(baseline.paths), len(seeds)), format_table(baseline_summary))
            environment = environment_differences([run["checkpoint"]["provenance"] for run in runs],
                                                  [run["checkpoint"]["provenance"] for run in baseline_runs])
            log.info("ckpt_path against compare_with (difference = ckpt_path - compare_with):\n%s\ntrained by: ckpt_path %s; "
                     "compare_with %s%s", format_comparison(comparison), code_of(runs), code_of(baseline_runs),
                     f"\ntrained on other libraries or machines (ckpt_path -> compare_with): {', '.join(environment)}"
                     if environment else "")
    write_diffs(out, evaluation, label="evaluation")
    report.update(protocol=protocol, data=datamodule.name, config=OmegaConf.to_container(cfg, resolve=True),
                  run_config=OmegaConf.to_container(train_cfg) if train_cfg is not None else None,
                  provenance=evaluation.record)
    path = out / "report.json"
    # strict JSON: a metric without a value (NaN) was written as a bare NaN, which strict parsers refuse (an audit)
    path.write_text(json.dumps(json_safe(report), indent=2, default=str, allow_nan=False))
    if "values" in report:
        log.info("%s", format_values(report["values"]))
    log.info("Wrote %s", path)
    return report


def use_thread_count(chosen: int | None, checkpoint: dict[str, Any] | None) -> None:
    """``cpu_threads``, else the checkpoint run's count: sums split across threads add in another order, so the
    callback's values were reproduced only to ~1e-10 by a process with another count (an audit: every toy preset
    but r3gan's grid, which takes 2, trains on one thread). A count above this machine's cores is not taken (it would
    only be slow)."""
    recorded = (checkpoint or {}).get("cpu_threads")
    if chosen:
        torch.set_num_threads(int(chosen))
    elif recorded and int(recorded) != torch.get_num_threads():
        if int(recorded) <= (os.cpu_count() or 1):
            torch.set_num_threads(int(recorded))
        else:
            log.info("the checkpoint's run had %d CPU threads, this machine %d cores: its logged values are reproduced "
                     "to about 1e-10, not to the last digit", int(recorded), os.cpu_count() or 1)


def metrics_choice() -> str | None:
    """The ``metrics=`` group chosen on the command line, as Hydra composed it (None when evaluate() runs without
    Hydra, or no group was chosen)."""
    from hydra.core.hydra_config import HydraConfig

    try:
        return HydraConfig.get().runtime.choices.get("metrics")
    except ValueError:  # HydraConfig was not set: called without Hydra
        return None


# ------------------------------------------------------------------------------------ the data scored against
def data_to_score_against(cfg: DictConfig, train_cfg: DictConfig | None, first_checkpoint: str | None) -> DictConfig:
    """``data=<name>``'s node, or else the checkpoint run's. Options given without a data set (``+data.root=/x``,
    which Hydra suggests for ``data.root=/x``) make a node without ``_target_``, which used to fail when built with
    an OmegaConf traceback (``Missing key prepare_data``)."""
    chosen = cfg.get("data")
    if chosen is not None and not (OmegaConf.is_dict(chosen) and chosen.get("_target_")):
        raise ConfigError(options_without_a_data_set(chosen, train_cfg))
    if chosen is not None:
        return chosen
    if train_cfg is None:
        raise ConfigError("fake_path= is scored against a dataset: add data=<name> (e.g. data=digits)")
    return stored_data(train_cfg, first_checkpoint)


def options_without_a_data_set(chosen: Any, train_cfg: DictConfig | None) -> str:
    """The refusal of ``data`` options given without ``data=<name>``, with the command that works: the
    checkpoint run's data set named first."""
    given = OmegaConf.to_container(chosen) if OmegaConf.is_config(chosen) else chosen
    if isinstance(given, dict):
        options = " ".join(f"{key}={value}" for key, value in leaves(given, "data").items())
    else:
        options = f"data={given}"
    name = data_config_name(train_cfg.get("data")) if train_cfg is not None else None
    example = f"data={name or '<name>'} {options}" if isinstance(given, dict) else "data=<name>"
    ran_on = f" (the checkpoint's run trained on data={name})" if name else ""
    as_stored = " (without it, the checkpoint's data is used as stored)" if train_cfg is not None else ""
    return (f"{options} sets options of no data set: evaluate.py has a data config only when data=<name> chooses one"
            f"{as_stored}; expected the data set first, e.g. {example}{ran_on}")


def stored_data(train_cfg: DictConfig, path: str | None) -> DictConfig:
    """The checkpoint run's data node (the data set it trained on)."""
    data = train_cfg.get("data")
    if not (OmegaConf.is_dict(data) and data.get("_target_")):
        raise CheckpointError(f"{path}: its run_config has no data node with a _target_, so it does not say which data "
                              "set it was trained on; choose one with data=<name> (e.g. data=digits)")
    return data


def data_config_name(node: Any) -> str | None:
    """The ``conf/data`` config a resolved data node was composed from (a checkpoint stores the node, not the
    choice): the one of its ``_target_``, and of several (toy2d_ring, toy2d_grid) the one whose own plain values
    it keeps most of; None when none or several fit."""
    if not (OmegaConf.is_dict(node) or isinstance(node, dict)) or not node.get("_target_"):
        return None
    stored = OmegaConf.to_container(node) if OmegaConf.is_config(node) else node
    matches: dict[str, int] = {}
    for file in sorted((PROJECT_ROOT / "conf" / "data").glob("*.yaml")):
        config = OmegaConf.to_container(OmegaConf.load(file))
        if config.get("_target_") == stored["_target_"]:
            plain = {key: value for key, value in config.items() if not is_interpolation(value)}
            matches[file.stem] = sum(stored.get(key) == value for key, value in plain.items())
    best = [name for name, count in matches.items() if count == max(matches.values(), default=0)]
    return best[0] if len(best) == 1 else None


def is_interpolation(value: Any) -> bool:
    return isinstance(value, str) and "${" in value


def prepare(datamodule, data_cfg: DictConfig, from_checkpoint: bool) -> None:
    """Prepare and set up the data. Where it is the checkpoint run's (no ``data=``), a data set that is not found
    says how to point evaluate.py at it: its fix names ``data.root`` and the like, which evaluate.py takes only
    after the data set's name (``data.root=/x`` alone is refused by Hydra, ``+data.root=/x`` chooses no data set)."""
    try:
        datamodule.prepare_data()
        datamodule.setup("fit")
    except (DatasetNotFoundError, DatasetFormatError) as error:
        if not from_checkpoint:
            raise
        name = data_config_name(data_cfg) or "<name>"
        raise DataError(f"{error}; evaluate.py reads the checkpoint run's data (data={name}): give such options after "
                        f"its name, e.g. data={name} data.root=/new/root") from None


# ------------------------------------------------------------------------------------ every checkpoint, checked
def check_checkpoints(paths: list[str], first: dict[str, Any], cfg: DictConfig, suite: MetricSuite, datamodule,
                      device: str) -> Any:
    """Load, build and check every checkpoint before the first is scored: readable, a generator that builds with
    its weights, samples of the data's shape, what the metrics need, and (without ``data=``) trained on the same
    data. A refusal of the last job used to come after the others were scored, naming no checkpoint. Returns the
    generator of a single checkpoint (built once); of several each is dropped after its check, so that one
    generator at a time is held, and built again when it is scored (None then, and without checkpoints)."""
    if len(paths) == 1:
        return checked_generator(paths[0], first, cfg, suite, datamodule, device)
    differing, other_code = [], []
    first_trained_by = history_identity((first or {}).get("provenance"))  # first: None for a folder of images
    for path in paths:
        checkpoint = first if path == paths[0] else load_checkpoint(path)
        if not cfg.get("data") and stored_data_identity(checkpoint, path) != stored_data_identity(first, paths[0]):
            raise ConfigError(f"{path} was trained on other data than {paths[0]}; pass data=<name> to score every "
                              "checkpoint against one data set")
        checked_generator(path, checkpoint, cfg, suite, datamodule, device)
        changed = options_changed_since(first.get("run_config") or {}, checkpoint.get("run_config") or {}, limit=3)
        if changed:
            differing.append((path, changed))
        trained_by = history_identity(checkpoint.get("provenance"))
        if trained_by is not None and first_trained_by is not None and trained_by != first_trained_by:
            other_code.append((path, checkpoint.get("provenance")))
    if other_code:  # said, as differing options are: a code change between seeds of one experiment goes unseen otherwise
        path, history = other_code[0]
        log.warning("the checkpoints' runs were trained by different code (%s: %s; %s: %s)%s; the summary pools them as "
                    "repeats of one experiment", path, describe_history(history), paths[0],
                    describe_history(first.get("provenance")),
                    f", and {len(other_code) - 1} more checkpoints differ" if len(other_code) > 1 else "")
    if differing:  # a glob over a cgan and an acgan run was summarised as one experiment without a word (an audit)
        path, changed = differing[0]
        log.warning("the checkpoints' runs differ in their options (%s against %s: %s)%s; the summary pools them as "
                    "repeats of one experiment", path, paths[0], "; ".join(changed),
                    f", and {len(differing) - 1} more checkpoints differ" if len(differing) > 1 else "")
    return None


def evaluate_checkpoints(paths: list[str], first: dict[str, Any], only_generator: Any, seeds: list[int], suite: MetricSuite,
                         datamodule, identity: Any, cfg: DictConfig, device: str) -> tuple[list[dict[str, Any]], Any]:
    """One evaluation per checkpoint and latent seed: (runs, the protocol of the first)."""
    runs, protocol = [], None
    for path in paths:
        checkpoint = first if path == paths[0] else load_checkpoint(path)
        # checked before; built again here so that one generator at a time is held
        generator = only_generator if only_generator is not None else \
            generator_from_checkpoint(checkpoint, use_ema=cfg.use_ema, device=device, path=path)
        for seed in seeds:
            values, run_protocol = suite.evaluate_generator(generator, datamodule, identity, latent_seed=seed)
            protocol = protocol or run_protocol
            runs.append({"checkpoint": checkpoint_record(path, checkpoint, generator), "latent_seed": seed, "values": values})
            log.info("%s, latent seed %d: %s", path, seed, format_values(values))
    return runs, protocol


def code_of(runs: list[dict[str, Any]]) -> str:
    """The code that trained a set of evaluated runs, each checkpoint once, with how many: ``commit ... (3
    checkpoints)``, several such pieces in brackets when the checkpoints ran on different code."""
    checkpoints = {run["checkpoint"]["path"]: run["checkpoint"]["provenance"] for run in runs}
    groups = group_by_code(checkpoints.items())
    text = "; ".join(f"{code} ({len(paths)} checkpoint{'s' if len(paths) > 1 else ''})" for code, paths in groups.items())
    return text if len(groups) == 1 else f"[{text}]"


def what_repeats(checkpoints: int, seeds: int) -> str:
    """What n, std and the interval of a summary are over (:func:`gan.metrics.summary.unit_values`)."""
    latent = f"{seeds} latent seed{'s' if seeds > 1 else ''}"
    if checkpoints > 1:
        each = ", each the mean of its latent seeds" if seeds > 1 else ""
        return f"{checkpoints} checkpoints x {latent}; n, std and interval over the checkpoints{each}"
    return (f"1 checkpoint x {latent}; n, std and interval over the latent seeds: sampling noise only, not the spread "
            "between training runs")


class Baseline(NamedTuple):
    """``compare_with``'s checkpoints, checked as ``ckpt_path``'s are."""

    paths: list[str]
    first: dict[str, Any]
    only_generator: Any  # the generator of a single checkpoint, built once


def checked_baseline(cfg: DictConfig, paths: list[str], first: dict[str, Any] | None, seeds: int, suite: MetricSuite,
                     datamodule, device: str) -> Baseline | None:
    """``compare_with``'s checkpoints, refused before anything is scored when they cannot be compared with
    ``ckpt_path``'s: the same checkpoint on both sides, one checkpoint against several (the units would differ: latent
    seeds of one checkpoint against training runs), one against one without several latent seeds, other data."""
    if not cfg.get("compare_with"):
        return None
    baseline_paths = find_checkpoints(cfg.compare_with, cfg.get("ckpt_name") or "last.ckpt")
    check_one_checkpoint_per_run(baseline_paths, "compare_with", cfg.compare_with)
    shared = sorted({str(Path(p).resolve()) for p in paths} & {str(Path(p).resolve()) for p in baseline_paths})
    if shared:
        raise ConfigError(f"compare_with={cfg.compare_with} holds {shared[0]}, which ckpt_path={cfg.ckpt_path} holds as "
                          "well; expected two separate sets of checkpoints")
    if (len(paths) > 1) != (len(baseline_paths) > 1):
        raise ConfigError(f"compare_with={cfg.compare_with}: {len(baseline_paths)} checkpoint(s) against ckpt_path's "
                          f"{len(paths)}; expected several on both sides (training runs: a comparison of two recipes) "
                          "or one on each side with seeds=[...] (two checkpoints, over latent seeds)")
    if len(paths) == 1 and seeds < 2:
        raise ConfigError(f"compare_with={cfg.compare_with}: one checkpoint against one with one latent seed has no "
                          "spread to test a difference against; expected seeds=[0,1,2,...], or several checkpoints "
                          "(training seeds) on each side")
    try:
        baseline_first = load_checkpoint(baseline_paths[0])
    except CheckpointError as error:  # "checkpoint not found: ..." did not say it was compare_with's (an audit)
        raise CheckpointError(f"compare_with={cfg.compare_with}: {error}") from None
    if not cfg.get("data") and stored_data_identity(baseline_first, baseline_paths[0]) != stored_data_identity(first, paths[0]):
        raise ConfigError(f"{baseline_paths[0]} (compare_with) was trained on other data than {paths[0]}; pass "
                          "data=<name> to score both sides against one data set")
    only_generator = check_checkpoints(baseline_paths, baseline_first, cfg, suite, datamodule, device)
    changed = options_changed_since(first.get("run_config") or {}, baseline_first.get("run_config") or {}, limit=3)
    log.info("comparing %d checkpoint(s) with %d of compare_with=%s%s", len(paths), len(baseline_paths), cfg.compare_with,
             f"; their runs differ in {'; '.join(changed)}" if changed else "; their runs have the same options")
    if len(paths) == 1:
        log.warning("compare_with: one checkpoint on each side, so the test is of these two checkpoints over latent seeds "
                    "(sampling noise), not of the recipes that trained them; compare several training runs of each for that")
    return Baseline(baseline_paths, baseline_first, only_generator)


def stored_data_identity(checkpoint: dict[str, Any], path: str) -> Any:
    return data_identity(OmegaConf.to_container(stored_data(run_config(checkpoint), path)))


def checked_generator(path: str, checkpoint: dict[str, Any], cfg: DictConfig, suite: MetricSuite, datamodule,
                      device: str) -> Any:
    """The checkpoint's generator, after checking that it draws samples the data and the metrics can take."""
    generator = generator_from_checkpoint(checkpoint, use_ema=cfg.use_ema, device=device, path=path)
    chosen = f"data={data_config_name(cfg.data) or datamodule.name}" if cfg.get("data") else None
    check_sample_shape(path, tuple(generator.sample_shape), datamodule, chosen)
    try:
        suite.check_generator(generator.num_classes)
    except ConfigError as error:  # a metric's refusal, which does not know which checkpoint it was
        raise ConfigError(f"{path}: {error}") from None
    return generator


def check_sample_shape(path: str, shape: tuple[int, ...], datamodule, chosen: str | None) -> None:
    """The generator's samples against the data's (``chosen``: the ``data=<name>`` given, None: the checkpoint
    run's data), as train.py checks them: 2D points scored against images, or the other way round, failed inside a
    metric with a ValueError. Images of another size are scored, since every image extractor resizes to its input
    size (as for a folder of images), but not of another channel count: gray fakes against colour reals would
    measure the colour, not the generator."""
    real = tuple(datamodule.sample_shape)
    if shape == real:
        return
    if datamodule.kind == "image" and len(shape) == len(real) == 3 and shape[0] == real[0]:
        log.info("%s draws %s images, data %s is %s: the metrics' feature extractors resize both", path,
                 "x".join(map(str, shape)), datamodule.name, "x".join(map(str, real)))
        return
    drawn = {1: "points", 3: "images"}.get(len(shape), "samples")
    data = chosen or f"its run's data ({datamodule.name})"
    yields = {"image": "images"}.get(datamodule.kind, datamodule.kind)
    if chosen is not None:
        fix = f"leave data= out to score it against its own run's data, or choose data of shape {list(shape)}"
    else:
        fix = f"its run_config's data does not fit its generator; choose data of shape {list(shape)} with data=<name>"
    raise ConfigError(f"{path}: its generator draws {drawn} of shape {list(shape)}, but {data} yields {yields} of shape "
                      f"{list(real)}; {fix}")


def format_values(values: dict[str, float]) -> str:
    return ", ".join(f"{name}={value:.5g}" for name, value in values.items()) or "no metrics selected"


def checkpoint_record(path: str | Path, checkpoint: dict[str, Any], generator) -> dict[str, Any]:
    """The checkpoint's path, counters and which weights were scored, and the code, libraries and machine that
    trained each piece of its run (``provenance``: None for a checkpoint written before they were recorded)."""
    return {"path": str(Path(path).resolve()), "ema_weights": generator.uses_ema_weights, **checkpoint.get("gan_counters", {}),
            "provenance": checkpoint.get("provenance")}


def find_checkpoints(pattern: str, name: str = "last.ckpt") -> list[str]:
    """The checkpoints ``ckpt_path`` names: one file, a glob (``runs/*/checkpoints/last.ckpt``), or a directory
    (a multirun's: every ``<job>/checkpoints/<name>`` below it; a run's ``checkpoints`` folder: its ``<name>``),
    in natural order (job 2 before job 10)."""
    def natural(path: str) -> list:
        return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]

    pattern = str(pattern)
    if glob.has_magic(pattern):
        found = glob.glob(pattern, recursive=True)
    elif Path(pattern).is_dir():  # glob.glob follows job folders that are links (Path.glob did not: an audit)
        found = glob.glob(os.path.join(glob.escape(pattern), "**", "checkpoints", name), recursive=True)
        if not found and (Path(pattern) / name).is_file():  # a run's checkpoints folder itself
            found = [str(Path(pattern) / name)]
    else:
        return [pattern]  # one file; load_checkpoint says when it is missing
    if not found:
        looked_for = "" if glob.has_magic(pattern) else f" (looked for <job>/checkpoints/{name} below it)"
        raise CheckpointError(f"ckpt_path={pattern} matches no checkpoint{looked_for}")
    return sorted(found, key=natural)


def check_one_checkpoint_per_run(paths: list[str], option: str, pattern: str) -> None:
    """Several checkpoints are summarized (and compared) as training runs: two of one run (its best.ckpt and
    last.ckpt, matched by ``runs/m5/checkpoints/*.ckpt``) are not two runs, and their interval and p-value were
    presented as if they were (an audit)."""
    if len(paths) < 2:
        return
    seen: dict[Path, str] = {}
    for path in paths:
        run = run_folder(path)
        if run in seen:
            raise ConfigError(f"{option}={pattern}: {seen[run]} and {path} are checkpoints of one run ({run}); several "
                              "checkpoints are summarized as training runs, so expected one checkpoint per run (e.g. "
                              "<runs>/*/checkpoints/last.ckpt)")
        seen[run] = path


@contextmanager
def second_interrupt_aborts() -> Iterator[None]:
    """Within the block a second Ctrl+C ends the process at once (status 130).

    A first one raises KeyboardInterrupt as usual, but Python delivers it only once the main thread runs
    Python code again: during a long native call (a big matrix function, a large batch through a network)
    it waits, and so would every further Ctrl+C. Here a watcher thread counts the interrupts through the
    signal wakeup fd, which the C-level handler writes at once; torch releases the GIL inside its
    operations, so the watcher runs and can exit on the second."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield  # someone else handles SIGINT (or this is not the main thread): leave it to them
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    done = threading.Event()

    def watch() -> None:
        interrupts = 0
        while not done.is_set():
            interrupts += os.read(read_fd, 64).count(signal.SIGINT)
            if interrupts == 1 and not done.is_set():
                sys.stderr.write("\nInterrupted: stopping the evaluation (Ctrl+C again to abort at once)\n")
            elif interrupts >= 2 and not done.is_set():
                sys.stderr.write("\nAborted\n")
                sys.stderr.flush()
                os._exit(128 + signal.SIGINT)

    watcher = threading.Thread(target=watch, name="second-ctrl-c", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous_fd)
        done.set()
        os.write(write_fd, b"\0")  # wakes the watcher, which then returns
        watcher.join(timeout=1)
        os.close(read_fd)
        os.close(write_fd)


def picture_title(path: str, checkpoint: dict[str, Any], generator) -> str:
    """Which weights a picture shows: the run's folder and the file (``ckpt_path`` alone titled a run directory's
    scatter plot with the directory's name, and every run's ``last.ckpt`` alike), the generator step, EMA or not."""
    weights = "EMA generator" if generator.uses_ema_weights else "generator"
    return f"{run_folder(path).name}/{Path(path).resolve().name}: {weights} at generator step {trained_generator_steps(checkpoint)}"


@torch.no_grad()
def draw(generator, datamodule, out: Path, cfg: DictConfig, title: str | None = None) -> dict[str, str]:
    """A sample picture (titled ``title`` where the picture has a title: 2D points), and for image data latent
    interpolation strips, from seeded latent codes."""
    rng = torch.Generator().manual_seed(cfg.seed)
    modes = getattr(datamodule, "modes", None)
    count = cfg.num_points if datamodule.kind == "points" else cfg.num_images
    nrow, num_classes = None, getattr(generator, "num_classes", None)
    if num_classes and datamodule.kind == "image":
        # a row per class with the same code down each column, as the training grids: random classes could not show
        # whether the generator follows its labels (an audit)
        codes, labels, nrow = class_grid(count, num_classes)
        noise = generator.noise(codes, rng)
        with eval_mode(generator):
            samples = generator(noise[torch.arange(len(labels)) % codes], labels.to(noise.device))
    else:
        samples = generator.sample(count, generator=rng)
    pictures = {"samples": str(save_samples(samples, out / "samples.png", modes, title=title, nrow=nrow))}
    if datamodule.kind == "image" and cfg.interpolation.rows > 0:
        strips = latent_interpolation(generator, cfg.interpolation.rows, cfg.interpolation.steps, rng)
        pictures["interpolation"] = str(save_image_grid(strips, out / "interpolation.png", nrow=cfg.interpolation.steps))
    nearest = cfg.get("nearest") or {}  # absent from an evaluate config written before nearest.png: none
    if datamodule.kind == "image" and (nearest.get("rows") or 0) > 0:
        fakes = generator.sample(int(nearest.rows), generator=rng).cpu()
        pictures["nearest"] = str(save_image_grid(nearest_rows(fakes, datamodule, cfg), out / "nearest.png",
                                                  nrow=int(nearest.get("k") or 7) + 1))
    return pictures


#: real images read at a time for nearest.png
NEAREST_CHUNK = 256


def nearest_rows(fakes: torch.Tensor, datamodule, cfg: DictConfig) -> torch.Tensor:
    """Each fake followed by its ``nearest.k`` nearest real images, searched in the draw of reals the metrics
    compare with (``metrics.num_real``, capped at the train split: the set the memorization metric reads), read a
    chunk at a time."""
    if datamodule.train_set is None:
        datamodule.setup("fit")
    real = datamodule.train_set
    draw = real_sample_indices(datamodule, min(int(cfg.metrics.num_real), len(real)), int(cfg.metrics.seed))
    k = min(int(cfg.nearest.get("k") or 7), len(draw))

    def images(indices) -> torch.Tensor:
        # a generator of another resolution than the data (scored after resizing): the reals at the fakes' size
        batch = torch.stack([real[int(i)][0] for i in indices]).float()
        if batch.shape[-2:] != fakes.shape[-2:]:
            batch = torch.nn.functional.interpolate(batch, size=fakes.shape[-2:], mode="bilinear", antialias=True)
        return batch

    chunks = (images(draw[start:start + NEAREST_CHUNK]) for start in range(0, len(draw), NEAREST_CHUNK))
    nearest = nearest_reals(fakes, chunks, k)
    return torch.cat([torch.cat([fake.unsqueeze(0), images(draw[row])]) for fake, row in zip(fakes.float(), nearest)])


@torch.no_grad()
def latent_interpolation(generator, rows: int, steps: int, rng: torch.Generator) -> torch.Tensor:
    """``rows`` strips of ``steps`` images each, along great circles between two latent codes (slerp: a
    straight line would pass through the low-norm centre that a Gaussian prior almost never samples)."""
    start, end = generator.noise(rows, rng), generator.noise(rows, rng)
    labels = generator.random_labels(rows, rng, start.device)
    omega = torch.acos((start * end).sum(1, keepdim=True) / (start.norm(dim=1, keepdim=True) * end.norm(dim=1, keepdim=True))).clamp_min(1e-6)
    t = torch.linspace(0, 1, steps, device=start.device).view(1, steps, 1)
    omega = omega.unsqueeze(1)
    codes = (torch.sin((1 - t) * omega) * start.unsqueeze(1) + torch.sin(t * omega) * end.unsqueeze(1)) / torch.sin(omega)
    if labels is not None:
        labels = labels.repeat_interleave(steps)
    with eval_mode(generator):
        return generator(codes.reshape(rows * steps, -1), labels)


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    """A user error (missing, truncated or foreign checkpoint, missing data, bad option) is one line,
    ``error: <message>``, and exit status 2; anything else keeps its traceback."""
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    for line in top_level_keys_nothing_reads(cfg, hydra_cfg.overrides.task, labels=None, hydra_cfg=hydra_cfg):
        log.warning(line)
    evaluate(cfg)


if __name__ == "__main__":
    composition_errors_in_one_line()
    refuse_training_options(sys.argv[1:])
    main()
