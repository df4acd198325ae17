"""OmegaConf resolvers the configs use that need nothing above ``gan.utils`` (registered on import of the
``gan`` package, together with the metric resolvers of :mod:`gan.resolvers`), what a per-data preset sets, read
from its file, and the checks of a composed run's options before anything is built (the one-line errors and
warnings of train.py and evaluate.py)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Iterable, NamedTuple, Sequence

from omegaconf import DictConfig, ListConfig, OmegaConf

from gan.utils.errors import ConfigError
from gan.utils.steps import optimizer_steps

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def slurm_batch_job_id() -> str | None:
    """The SLURM job id when this process is a batch job's (None outside SLURM and in an interactive
    allocation, which Lightning does not treat as SLURM either)."""
    if os.environ.get("SLURM_JOB_NAME") in ("bash", "interactive"):
        return None
    return os.environ.get("SLURM_JOB_ID")


def run_dir_name(timestamp: str, overrides: Iterable[str] = ()) -> str:
    """The name of a run's (or sweep's) directory: ``timestamp``, except in a SLURM batch job. A requeued
    job starts again with the same job id and command line, and must find the checkpoints its first start
    wrote, so there the name is ``slurm-<job id>-<hash of the command-line overrides>`` (the hash keeps
    apart several runs started by one job script)."""
    job_id = slurm_batch_job_id()
    if job_id is None:
        return str(timestamp)
    digest = hashlib.sha1("\n".join(str(o) for o in overrides).encode()).hexdigest()[:8]
    return f"slurm-{job_id}-{digest}"


def optimizer_steps_or_off(generator_steps: Any, n_critic: Any, n_generator: Any = 1) -> int:
    """The ``optimizer_steps`` resolver: a null count (``metrics.every_n_generator_steps=null``, no scoring) is 0
    optimizer steps, which a checkpoint callback reads as off; it was ``int(None)`` inside the resolver, a traceback
    before the options were checked (an audit). Other values are checked by :func:`check_run_options`."""
    return 0 if generator_steps is None else optimizer_steps(generator_steps, n_critic, n_generator)


def register_resolvers(extra: dict | None = None) -> None:
    from gan.utils.device import bf16_where_native
    from gan.utils.logging import run_group, run_name, run_tags, wandb_offline

    resolvers = {
        "project_root": lambda: str(PROJECT_ROOT),
        "optimizer_steps": optimizer_steps_or_off,
        "run_dir_name": run_dir_name,
        "wandb_offline": wandb_offline,
        "run_name": run_name,
        "run_group": run_group,
        "run_tags": run_tags,
        "bf16_where_native": bf16_where_native,
        **(extra or {}),
    }
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


def preset_file(choice: str, conf_dir: Path = PROJECT_ROOT / "conf") -> Path:
    """The file of the per-data preset ``choice`` (``tuned/<model>/<data>``, as in Hydra's runtime choices);
    it need not exist: the preset is optional."""
    return conf_dir / "preset" / f"{choice}.yaml"


def preset_values(choice: str, conf_dir: Path = PROJECT_ROOT / "conf") -> DictConfig:
    """The values the per-data preset ``choice`` sets, with those of the presets it includes through its
    defaults list."""
    text = OmegaConf.load(preset_file(choice, conf_dir))
    included = [entry for entry in text.pop("defaults", []) if isinstance(entry, str) and entry.startswith("/preset/")]
    values = OmegaConf.create()
    for entry in included:
        values = OmegaConf.merge(values, preset_values(entry[len("/preset/"):].split("@")[0], conf_dir))
    return OmegaConf.merge(values, text)


# the groups whose hyperparameters a preset may set: a user who picks one of them means its values
_HYPERPARAMETER_GROUPS = ("optimizer", "loss")


def ttur_learning_rates(conf_dir: Path = PROJECT_ROOT / "conf") -> tuple[float, float]:
    """(G's, D's) learning rate of ``optimizer=ttur``, from its file."""
    ttur = OmegaConf.load(conf_dir / "optimizer" / "ttur.yaml")
    return float(ttur.generator.lr), float(ttur.discriminator.lr)


def running_preset_setting(group: str) -> str | None:
    """The per-data preset of the running Hydra job (``tuned/dcgan/digits``) when it sets values of ``group``, which
    a ``group=<choice>`` on the command line would then not get as written; None without a Hydra job (the Python
    API), without a preset, or when the preset leaves the group alone. It reads Hydra's global record of the job: a
    process that set it for another composed config (``HydraConfig().set_config``, as the tests do) gets that one's."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    choice = HydraConfig.get().runtime.choices.get("preset@_global_")
    if not choice or not preset_file(choice).is_file():
        return None
    return choice if preset_values(choice).get(group) else None


def groups_under_a_preset(preset_choice: str | None, task_overrides: Iterable[str],
                          conf_dir: Path = PROJECT_ROOT / "conf") -> list[str]:
    """One line per group chosen on the command line (``optimizer=ttur``) some of whose values the run's
    per-data preset replaces: the preset is composed after the groups, so ``optimizer=ttur`` with ``model=dcgan
    data=digits`` would silently train with dcgan's digits preset's learning rates. Empty without a preset (the choice
    names a file even where the optional preset does not exist)."""
    if not preset_choice or not preset_file(preset_choice, conf_dir).is_file():
        return []
    values = preset_values(preset_choice, conf_dir)
    lines = []
    for override in task_overrides:
        key, _, choice = str(override).partition("=")
        if choice and key in _HYPERPARAMETER_GROUPS and key in values:
            replaced = sorted(_leaf_keys(values[key], key))
            lines.append(f"the per-data preset {preset_choice} sets {', '.join(replaced)} over {key}={choice}; "
                         f"add presets=none to train with {key}={choice} as it is")
    return lines


def check_preset_fits_choices(cfg: DictConfig, preset_choice: str | None, task_overrides: Iterable[str],
                              conf_dir: Path = PROJECT_ROOT / "conf") -> None:
    """A group chosen on the command line whose target does not take an option the per-data preset sets over it:
    ``optimizer=rmsprop_wgan`` with ``model=dcgan data=digits`` (its preset sets Adam's betas) was refused as "RMSprop
    takes no option betas", which names neither the preset nor ``presets=none`` (an audit)."""
    from gan.utils.option_types import accepted_options

    if not preset_choice or not preset_file(preset_choice, conf_dir).is_file():
        return
    values = preset_values(preset_choice, conf_dir)
    for override in task_overrides:
        key, _, choice = str(override).partition("=")
        if not choice or key not in _HYPERPARAMETER_GROUPS or key not in values:
            continue
        for leaf in sorted(_leaf_keys(values[key], key)):
            parent, _, option = leaf.rpartition(".")
            node = OmegaConf.select(cfg, parent)
            target = node.get("_target_") if isinstance(node, DictConfig) else None
            accepted = accepted_options(target) if target else None
            # not _target_, and not an option the command line removed (~optimizer.discriminator.betas)
            set_by_preset = OmegaConf.select(values, leaf) is not None and not option.startswith("_") and \
                OmegaConf.select(cfg, leaf) is not None
            if set_by_preset and accepted is not None and option not in accepted:
                raise ConfigError(f"{key}={choice}: the per-data preset {preset_choice} sets {leaf}, which "
                                  f"{str(target).rsplit('.', 1)[-1]} does not take; add presets=none to train with "
                                  f"{key}={choice} as it is")


def experiment_model(experiment: str, conf_dir: Path = PROJECT_ROOT / "conf") -> str | None:
    """The model an experiment config is written for (its ``override /model: ...``), or None."""
    path = conf_dir / "experiment" / f"{experiment}.yaml"
    if not path.is_file():
        return None
    for entry in OmegaConf.load(path).get("defaults", []):
        if isinstance(entry, (dict, DictConfig)) and "override /model" in entry:
            return str(entry["override /model"])
    return None


def experiment_model_replaced(choices: dict, conf_dir: Path = PROJECT_ROOT / "conf") -> list[str]:
    """The line for an experiment written for one model run with another, which only a choice on the command line
    can make (Hydra lets it win): ``experiment=grid10 model=dcgan`` failed on r3gan's schedule options with a message
    that named neither (an audit)."""
    experiment, model = choices.get("experiment"), choices.get("model")
    pinned = experiment_model(str(experiment), conf_dir) if experiment else None
    if pinned and model != pinned:
        return [f"experiment={experiment} is written for model={pinned} (its networks and options), but model={model} on the "
                f"command line replaces it; options of the experiment may not fit model={model}"]
    return []


def target_attribute(node: Any, attribute: str, default: Any = None) -> Any:
    """A class attribute of the ``_target_`` of a config node, read before anything is built: what the checks here
    need to know of a loss, penalty, augmentation or schedule is declared on its class, so a user's own subclass
    is judged as the framework's are (they matched class names, which only the framework's own could meet: a
    review). ``default`` for a node without a target, or one that does not import."""
    from hydra.utils import get_class

    target = node.get("_target_") if isinstance(node, (DictConfig, dict)) else None
    if not target:
        return default
    try:
        return getattr(get_class(str(target)), attribute, default)
    except Exception:  # not a class, or not importable: its own build reports that, where it is built
        return default


def options_without_effect(cfg: DictConfig) -> list[str]:
    """Warnings for options that cannot act, or not as meant, in this run's combination (found by audits: each
    trained like the run without it, or otherwise than meant, without a word): an EMA whose ``ema_start`` comes
    after the run's last generator step (samples, metrics and ``load_generator`` then use the raw generator),
    ADA with a loss that leaves D's logits free to shift, where its overfitting signal, the mean sign of D on
    reals, follows that shift, a per-sample gradient penalty on a D with batch norm, a learning rate of 0, a metric
    interval without the metrics callback, and a sigmoid generator output (the data is in [-1, 1] or the plane)."""
    lines = []
    model = cfg.get("model") or {}
    steps, start = cfg.get("generator_steps"), model.get("ema_start")
    # a start written 1e12 is a float (it was no integer here, so the run went without the warning: an audit)
    if model.get("ema_decay") is not None and is_integer(steps) and is_number(start) and start > int(steps):
        lines.append(f"model.ema_start={start} comes after the run's last generator step (generator_steps={steps}): the EMA "
                     "is never updated, so samples, metrics and checkpoints' sampling generator are the raw generator's")
    # found by an audit of the tricks, each trained on without a word
    if model.get("real_label_range") is not None and is_number(model.get("real_label")) and float(model.get("real_label")) != 1.0:
        drawn = model.get("real_label_range")
        drawn = OmegaConf.to_container(drawn) if isinstance(drawn, ListConfig) else drawn
        lines.append(f"model.real_label={model.get('real_label')} has no effect: model.real_label_range={drawn} draws the "
                     "real targets instead")
    noise, noise_steps = model.get("instance_noise_std"), model.get("instance_noise_steps")
    if is_number(noise) and float(noise) > 0 and is_integer(steps) and is_number(noise_steps) and noise_steps > int(steps):
        lines.append(f"model.instance_noise_steps={noise_steps} is longer than the run (generator_steps={steps}): the "
                     f"instance noise (std {noise}) is never annealed to 0; leave instance_noise_steps at the run's length")
    if is_number(model.get("ema_decay")) and float(model.get("ema_decay")) == 0 and \
            not any(target_attribute(node, "sets", None) == "ema_decay" for node in (model.get("schedules") or {}).values()):
        lines.append(f"model.ema_decay={model.get('ema_decay')} keeps nothing of the generator's past: the 'EMA' generator that samples, metrics and "
                     "checkpoints use is a copy of the generator (model=r3gan sets the decay with model.schedules."
                     "ema_half_life; model.ema_decay=null turns the EMA off)")
    if OmegaConf.select(cfg, "model.discriminator.minibatch") == "stddev":
        batch, group = OmegaConf.select(cfg, "data.batch_size"), OmegaConf.select(cfg, "model.discriminator.minibatch_group_size")
        if is_integer(batch) and is_integer(group) and int(group) >= 2 and \
                max(g for g in range(1, min(int(group), int(batch)) + 1) if int(batch) % g == 0) == 1:
            lines.append(f"data.batch_size={batch} has no divisor from 2 to model.discriminator.minibatch_group_size={group}: "
                         "minibatch stddev groups each sample alone, where it has no spread, so the layer appends a "
                         "constant; use a batch size with a small divisor (e.g. an even one)")
    penalties = OmegaConf.select(cfg, "model.penalties") or {}
    on_inputs = sorted(name for name, node in penalties.items() if target_attribute(node, "penalizes_input_gradients", False))
    if on_inputs and OmegaConf.select(cfg, "model.discriminator.norm") == "batch":
        lines.append(f"model.penalties.{on_inputs[0]} penalizes D's gradient with respect to each input sample, but a D "
                     "with batch norm mixes the samples of a batch, so each sample's gradient carries the others' terms "
                     "(Gulrajani et al. 2017, section 4, drop batch norm from the critic for this reason); use "
                     "model.discriminator.norm=layer or none")
    schedules = OmegaConf.select(cfg, "model.schedules") or {}
    for network in ("generator", "discriminator"):  # torch takes 0: the network never changes (an audit)
        lr = OmegaConf.select(cfg, f"optimizer.{network}.lr")
        # a schedule of the learning rate sets it, whatever its name (only one named "lr" was seen: a review)
        scheduled = any(node is not None and node.get("hyperparameter") == "lr" and network in (node.get("networks") or ("generator", "discriminator"))
                        for node in schedules.values() if isinstance(node, DictConfig))
        if is_number(lr) and lr == 0 and not scheduled:
            lines.append(f"optimizer.{network}.lr=0: the {network} is never updated")
    if OmegaConf.select(cfg, "model.generator.output") == "sigmoid":  # it trained without a word (an audit)
        toy = OmegaConf.select(cfg, "data.layout") is not None
        lines.append(f"model.generator.output=sigmoid puts the samples in [0, 1], but the data spans "
                     f"{'the whole plane' if toy else '[-1, 1] (every image is scaled so)'}: the generator cannot reach "
                     f"values below 0; expected {'identity' if toy else 'tanh'} (data.generator_output)")
    metrics = cfg.get("metrics")
    every = OmegaConf.select(cfg, "metrics.every_n_generator_steps") if isinstance(metrics, DictConfig) else None
    if is_integer(every) and int(every) > 0 and OmegaConf.select(cfg, "callbacks.metrics") is None:
        lines.append(f"metrics.every_n_generator_steps={every} has no effect: the metrics callback is off "
                     "(callbacks=none or callbacks.metrics=null), so nothing is scored during training; evaluate.py scores a checkpoint")
    loss = str(OmegaConf.select(cfg, "loss._target_") or "").rsplit(".", 1)[-1]
    if target_attribute(OmegaConf.select(cfg, "model.augment"), "steers_by_real_logit_sign", False) and \
            target_attribute(cfg.get("loss"), "shift_invariant", False):
        lines.append(f"augment=ada adjusts its probability from the mean sign of D's logits on reals, but {loss} is "
                     "unchanged when every logit shifts by the same amount, so that sign follows an arbitrary offset and "
                     "not overfitting; use augment=diffaugment (a fixed probability) or a loss with a decision boundary "
                     "(non_saturating, hinge)")
    return lines


#: options that act only when another option switches their trick on: (option, the switch's key, whether the
#: switch is on, given its value, what to set). The config always carries every option's default, so what is
#: checked is an option set on the command line while its switch is off.
SWITCHED_OPTIONS = (
    ("model.discriminator.minibatch_group_size", "model.discriminator.minibatch", lambda v: v == "stddev",
     "model.discriminator.minibatch=stddev"),
    ("model.discriminator.minibatch_kernels", "model.discriminator.minibatch", lambda v: v == "discrimination",
     "model.discriminator.minibatch=discrimination"),
    ("model.discriminator.minibatch_kernel_dim", "model.discriminator.minibatch", lambda v: v == "discrimination",
     "model.discriminator.minibatch=discrimination"),
    ("model.ema_start", "model.ema_decay", lambda v: v is not None, "model.ema_decay (e.g. 0.999)"),
    ("model.instance_noise_steps", "model.instance_noise_std", lambda v: bool(v), "model.instance_noise_std > 0"),
    ("model.instance_noise_schedule", "model.instance_noise_std", lambda v: bool(v), "model.instance_noise_std > 0"),
    ("model.feature_matching_layer", "model.feature_matching_weight", lambda v: bool(v), "model.feature_matching_weight > 0"),
    ("model.auxiliary_weight", "model.discriminator.conditioning", lambda v: v == "auxiliary",
     "an auxiliary classifier head (model=acgan, model.discriminator.conditioning=auxiliary)"),
)


def options_whose_switch_is_off(cfg: DictConfig, task_overrides: Iterable[str]) -> list[str]:
    """One line per option set on the command line that acts only with a switch this run leaves off
    (``model.discriminator.minibatch_group_size=2`` without ``minibatch=stddev``): an audit found each training
    exactly like the run without it, without a word."""
    given = {str(o).lstrip("+~").partition("=")[0]: str(o).partition("=")[2] for o in task_overrides if "=" in str(o)}
    lines = []
    for option, switch, is_on, needs in SWITCHED_OPTIONS:
        value = OmegaConf.select(cfg, switch)
        if option in given and not is_on(value):
            lines.append(f"{option}={given[option]} has no effect: it acts only with {needs}, and "
                         f"{switch}={'null' if value is None else value} here")
    return lines


def model_options_under_a_schedule(schedules: DictConfig | None, key: str, choice: str) -> list[str]:
    """The line for ``key=choice`` when a schedule of ``model.schedules`` overwrites that model option at every
    generator step: a penalty's attribute (r3gan's ``gamma`` of ``r1r2``) or ``model.ema_decay`` (its half-life)."""
    lines = []
    for name, setting in (schedules or {}).items():
        sets = target_attribute(setting, "sets")
        if sets == "penalty":
            penalty, attribute = str(setting.penalty), str(setting.attribute)
            # a penalty left out (null) is not a value the schedule overwrites: the schedule's check names that case
            hit = key == f"model.penalties.{penalty}.{attribute}" or (key == f"model.penalties.{penalty}" and choice != "null")
            what = f"{attribute} of the {penalty} penalty"
        elif sets == "ema_decay":
            hit, what = key == "model.ema_decay", "the EMA's decay (from its half-life)"
        else:
            continue
        if hit:
            lines.append(f"model.schedules.{name} sets {what} at every generator step, so {key}={choice} does not set it; "
                         f"change model.schedules.{name}.value (start, end), or add model.schedules.{name}=null")
    return lines


def options_under_a_schedule(schedules: DictConfig | None, task_overrides: Iterable[str]) -> list[str]:
    """One line per optimizer option set on the command line (``optimizer.generator.lr=1e-3``, or a whole
    group, ``optimizer=ttur``) that a schedule of ``model.schedules`` overwrites at every generator step
    (r3gan schedules lr and Adam's beta2 on both optimizers), so the option would silently have no effect; and per
    model option a schedule overwrites (r3gan's R1/R2 gamma and EMA decay, :func:`model_options_under_a_schedule`)."""
    scheduled = []  # (hyperparameter, schedule name, networks): one hyperparameter may have a schedule per network
    for name, setting in (schedules or {}).items():
        if target_attribute(setting, "sets") == "optimizer":
            networks = tuple(setting.get("networks") or ("generator", "discriminator"))
            scheduled.append((str(setting.hyperparameter), name, networks))
    lines = []
    for override in task_overrides:
        key, _, choice = str(override).lstrip("+~").partition("=")
        if choice:
            lines += model_options_under_a_schedule(schedules, key, choice)
        if not choice or not (key == "optimizer" or key.startswith("optimizer.")):
            continue
        for hyperparameter, name, networks in scheduled:
            option = "betas" if hyperparameter in ("beta1", "beta2") else hyperparameter
            hit = key == "optimizer" or any(key in (f"optimizer.{network}.{option}", f"optimizer.{network}")
                                            for network in networks)
            if hit:
                lines.append(f"model.schedules.{name} sets {hyperparameter} of the {' and '.join(networks)} optimizer"
                             f"{'s' if len(networks) > 1 else ''} at every generator step, so {key}={choice} does not "
                             f"set it; change model.schedules.{name}.value (start, end), or add model.schedules.{name}=null "
                             f"to train with the optimizer's {hyperparameter}")
    return lines


def _leaf_keys(node, prefix: str) -> list[str]:
    if OmegaConf.is_dict(node):
        return [leaf for key, child in node.items() for leaf in _leaf_keys(child, f"{prefix}.{key}")]
    return [prefix]


class IntegerOption(NamedTuple):
    """The range of an integer option (None: no bound on that side), and whether null is allowed."""

    minimum: int | None
    nullable: bool = False
    maximum: int | None = None


#: the most samples a metric takes: 50,000 is the largest protocol in use (FID, IS); ten million Inception features
#: alone take 80 GB, and more was a slip (1e12) that sat counting its batches before days of sampling (an audit)
MAX_METRIC_SAMPLES = 10_000_000
#: the global seed: ``seed_everything`` seeds numpy, which takes 0 .. 2**32 - 1 (and fails outside with a traceback)
SEED = IntegerOption(0, maximum=2**32 - 1)
#: train.py's own integer options
RUN_OPTIONS = {"seed": SEED, "generator_steps": IntegerOption(1), "cpu_threads": IntegerOption(1, nullable=True),
               "metrics.every_n_generator_steps": IntegerOption(0, nullable=True)}  # 0: no scoring during training
#: evaluate.py's (``interpolation.steps`` >= 2: a strip runs from one latent code to another)
EVALUATE_OPTIONS = {"seed": SEED, "num_samples": IntegerOption(1, maximum=MAX_METRIC_SAMPLES), "num_images": IntegerOption(1),
                    "num_points": IntegerOption(1), "interpolation.rows": IntegerOption(0),
                    "interpolation.steps": IntegerOption(2),
                    # null (or absent, in an evaluate config written before nearest.png): no picture, 7 neighbours
                    "nearest.rows": IntegerOption(0, nullable=True), "nearest.k": IntegerOption(1, nullable=True),
                    "cpu_threads": IntegerOption(1, nullable=True)}


def check_integer_options(cfg: DictConfig, options: dict[str, IntegerOption]) -> None:
    """Integer options (dotted keys) checked before anything reads them: ``generator_steps=abc`` or ``-5``
    would otherwise fail in whichever object interpolates it first (the trainer's max_steps, a schedule's
    length), with a message naming that object's option and not this one, or as a ValueError traceback."""
    for key, (minimum, nullable, maximum) in options.items():
        value = OmegaConf.select(cfg, key)
        if value is None and nullable:
            continue
        if (not is_integer(value) or (minimum is not None and int(value) < minimum)
                or (maximum is not None and int(value) > maximum)):
            if maximum is not None:
                expected = f"an integer from {minimum} to {maximum}"
            else:
                expected = "an integer" if minimum is None else f"an integer >= {minimum}"
            if isinstance(value, float) and value.is_integer():  # generator_steps=1e5 seemed refused for its size
                # the value as Hydra parsed it, not as typed: "reads 1000 as a decimal number" of 1e3 (a walk-through)
                expected += (f", written out in digits, e.g. {key}={int(value)} (Hydra reads a number with an exponent "
                             "or a decimal point, such as 1e3, as a decimal number)")
            raise ConfigError(f"{key}={value} is not valid: expected {expected}{' or null' if nullable else ''}")


def is_integer(value: object) -> bool:
    """An int, or a string of one (what an ``${oc.env:...}`` interpolation gives); not a bool or a float."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return False
    try:
        return str(int(value)) == str(value).strip()
    except ValueError:
        return False


def is_number(value: object) -> bool:
    """An int or a float, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def missing_values(cfg: DictConfig | ListConfig) -> list[str]:
    """The keys whose value is missing (``???``), without resolving anything."""
    found: list[str] = []

    def walk(node: Any, prefix: str) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            name = f"{prefix}.{key}" if prefix else str(key)
            if value == "???":
                found.append(name)
            else:
                walk(value, name)

    walk(OmegaConf.to_container(cfg, resolve=False), "")
    return found


def check_no_missing_values(cfg: DictConfig) -> None:
    """A ``???`` value (set on the command line, or left by a config): OmegaConf's MissingMandatoryValue traceback
    when the object was built (an audit)."""
    missing = [key for key in missing_values(cfg) if not key.startswith("hydra.")]
    if missing:
        more = f" (and {len(missing) - 1} more: {', '.join(missing[1:4])})" if len(missing) > 1 else ""
        raise ConfigError(f"{missing[0]}=??? has no value{more}: expected a value, e.g. {missing[0]}=<value>")


#: nodes each entry of which is one object's config (a mapping with a ``_target_``), or null to leave it out, and what
#: such an object is called
GROUPS_OF_OBJECTS = {"callbacks": "a callback", "logger": "a logger", "optimizer": "an optimizer",
                     "model.penalties": "a penalty", "model.schedules": "a schedule"}
#: groups whose entries a run may leave out while a per-data preset still sets some of their options (the toys'
#: presets set the sample grid's interval, which callbacks=none removes): such a mapping without ``_target_`` is
#: left unbuilt, as before
OPTIONAL_OBJECTS = ("callbacks", "logger")


def check_groups_of_objects(cfg: DictConfig) -> None:
    """An entry of ``callbacks``, ``logger``, ``optimizer``, ``model.penalties`` or ``model.schedules`` that is no
    object's config: ``callbacks.sample_grid=5`` and ``logger.csv=5`` left the grids and the CSV out without a word,
    ``+callbacks.foo=1`` was ignored, and ``optimizer.generator=5``, ``+optimizer.foo=1`` and ``+model.schedules.foo=1``
    ended in a traceback from Hydra or from a check that reads the entries (an audit)."""
    for key, what in GROUPS_OF_OBJECTS.items():
        group = OmegaConf.select(cfg, key, throw_on_resolution_failure=False)
        if group is None:
            continue
        if not isinstance(group, DictConfig):
            raise ConfigError(f"{key}={_shown(group)}: expected a mapping of names to configs, each {what}'s "
                              f"({key}.<name>: {{_target_: ...}})")
        for name in group.keys():
            if OmegaConf.is_interpolation(group, name):
                continue  # checked where it resolves
            entry = group[name]
            if (entry is None and key != "optimizer") or (isinstance(entry, DictConfig) and "_target_" in entry):
                continue
            if isinstance(entry, DictConfig) and key in OPTIONAL_OBJECTS:
                continue  # a preset's options of a callback or logger the run left out (callbacks=none): unused
            leave_out = "; each network needs one" if key == "optimizer" else ", or null to leave it out"
            # a mapping without _target_: what an experiment or preset sets of an entry the chosen model lacks
            partial = ("; an experiment or per-data preset written for another model sets part of an entry this one "
                       "does not have?" if isinstance(entry, DictConfig) else "")
            raise ConfigError(f"{key}.{name}={_shown(entry)}: expected {what}'s config (a mapping with _target_)"
                              f"{leave_out}{partial}")


def _shown(value: Any) -> str:
    plain = OmegaConf.to_container(value, resolve=False) if isinstance(value, (DictConfig, ListConfig)) else value
    return "null" if plain is None else str(plain)


def check_metrics_options(cfg: DictConfig, conf_dir: Path = PROJECT_ROOT / "conf") -> None:
    """A key of ``metrics`` that is none of its options (those of ``conf/metrics/common.yaml``): added with ``+``
    (``+metrics.num_sample=500``, a typo of num_samples), it was read by nothing, without a word."""
    metrics = cfg.get("metrics")
    if not isinstance(metrics, DictConfig):
        return
    known = sorted(OmegaConf.load(conf_dir / "metrics" / "common.yaml").keys())
    unknown = [str(key) for key in metrics.keys() if key not in known]
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], known, n=1, cutoff=0.75)
        raise ConfigError(f"metrics.{unknown[0]} is not a metrics option (nothing would read it)"
                          f"{f'; did you mean metrics.{close[0]}?' if close else ''}; expected one of {', '.join(known)} "
                          "(a metric is chosen with metrics=[...] or +metrics.compute.<name>={})")


#: top-level keys train.py reads that no config sets, so a sweep adds them with + (``+failed_trial_value=-1``)
TOP_LEVEL_KEYS_READ_UNSET = ("failed_trial_value",)


def top_level_keys_nothing_reads(cfg: DictConfig, task_overrides: Iterable[str], labels: str | None = "tags=[...]",
                                 hydra_cfg: Any = None, conf_dir: Path = PROJECT_ROOT / "conf") -> list[str]:
    """One line per top-level key added on the command line (``+n_critc=5``, ``+lr=1e-3``) that no value of the
    config (or of ``hydra_cfg``: ``hydra.run.dir=runs/${study}``) interpolates, in any form (``${lr}``,
    ``${oc.select:lr,1}``, ``${..lr}``), and that the scripts do not read: Hydra adds any new key with ``+``, and
    nothing reads it. A warning, not an error: a key added to label runs (``+study=ablation``) is kept in the run's
    config and in W&B's; ``labels`` names the option meant for that (None: the script has none)."""
    import difflib
    import re

    lines = []
    interpolations = _interpolations(OmegaConf.to_container(cfg, resolve=False))
    if hydra_cfg is not None:
        interpolations += _interpolations(OmegaConf.to_container(hydra_cfg, resolve=False))
    for override in task_overrides:
        text = str(override)
        if not text.startswith("+") or text.startswith("++"):
            continue
        key, _, value = text[1:].partition("=")
        if "." in key or "@" in key or (conf_dir / key).is_dir() or key in TOP_LEVEL_KEYS_READ_UNSET:
            continue  # a nested option (its object checks it), a config group (+experiment=...), or read by train.py
        # the key at the start of an interpolation or of a resolver's argument, absolute or relative (``${lr}``,
        # ``${oc.select:lr,1}``, ``${..lr}``), not as a nested key's last part (``${model.n_critic}``)
        if any(re.search(rf"\$\{{(?:[^}}]*?[:,\s])?\.*{re.escape(key)}\b", found) for found in interpolations):
            continue
        known = sorted(str(k) for k in cfg.keys() if k != key)
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.7)
        if not close:  # an option of a node (+n_critic=5 for model.n_critic=5)?
            close = [f"{node}.{key}" for node in ("model", "data", "metrics", "trainer")
                     if isinstance(cfg.get(node), DictConfig) and key in cfg[node]][:1]
        kept = f"kept in the run's config; labels for runs go in {labels}" if labels else "kept in the config"
        lines.append(f"+{key}={value} adds a top-level key that nothing reads ({kept})"
                     f"{f'; did you mean {close[0]}?' if close else ''}")
    return lines


def _interpolations(node: Any) -> list[str]:
    """Every string of ``node`` (a container) that holds an interpolation."""
    if isinstance(node, dict):
        return [text for value in node.values() for text in _interpolations(value)]
    if isinstance(node, list):
        return [text for value in node for text in _interpolations(value)]
    return [node] if isinstance(node, str) and "${" in node else []


def check_path_options(cfg: DictConfig, keys: Sequence[str]) -> None:
    """Options that name a file or folder hold a string (or null): ``ckpt_path=-1`` was a TypeError traceback from
    inside pathlib (an audit)."""
    for key in keys:
        value = cfg.get(key)
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{key}={value} is not valid: expected a path (a string), or null")


def check_run_options(cfg: DictConfig) -> None:
    """train.py's ``seed``, ``generator_steps``, ``cpu_threads``, ``metrics.every_n_generator_steps`` and ``compile``,
    ``trainer.log_every_n_steps``, a hand-set ``trainer.max_steps``, that no value is missing (``???``), that every
    entry of a group of objects is one (:func:`check_groups_of_objects`), that ``metrics`` holds only its options, and
    that the run directory can be written."""
    check_no_missing_values(cfg)
    check_groups_of_objects(cfg)
    check_metrics_options(cfg)
    check_integer_options(cfg, RUN_OPTIONS)
    check_path_options(cfg, ("ckpt_path",))
    check_log_interval(cfg)
    if not isinstance(cfg.get("compile", False), bool):  # any other value was truthy: compile=maybe compiled
        raise ConfigError(f"compile={cfg.get('compile')} is not valid: expected true or false")
    check_run_length(cfg)
    output_dir = (cfg.get("paths") or {}).get("output_dir")
    if output_dir:
        check_writable_folder(output_dir, "paths.output_dir")


def check_log_interval(cfg: DictConfig) -> None:
    """``trainer.log_every_n_steps``: Lightning took 0 as "never log" (not even the last iteration) and a negative
    value as "every iteration", both without a word. Null: Lightning's default (50)."""
    value = OmegaConf.select(cfg, "trainer.log_every_n_steps")
    if value is not None and not (is_integer(value) and int(value) >= 1):
        raise ConfigError(f"trainer.log_every_n_steps={value} is not valid: expected an integer >= 1 (logger=none for no logging)")


def check_run_length(cfg: DictConfig) -> None:
    """``trainer.max_steps`` set by hand: Lightning counts both networks' updates, and the run's length is
    ``generator_steps``, from which the shipped config derives it. A different value used to win silently
    (``generator_steps=1000 trainer.max_steps=1000`` trained 500 generator steps of a dcgan), and the schedules,
    the metrics' last step and ``burn_in``, which are keyed on ``generator_steps``, no longer matched the run."""
    trainer, model = cfg.get("trainer"), cfg.get("model")
    if trainer is None or model is None or "max_steps" not in trainer or OmegaConf.is_interpolation(trainer, "max_steps"):
        return
    try:
        derived = optimizer_steps(cfg.generator_steps, model.get("n_critic", 1), model.get("n_generator", 1))
    except (TypeError, ValueError):  # n_critic or n_generator of the wrong type: reported where they are checked
        return
    if trainer.max_steps != derived:
        raise ConfigError(
            f"trainer.max_steps={trainer.max_steps}: the run's length is generator_steps={cfg.generator_steps}, from which "
            f"Lightning's max_steps (every D and G update: {derived} here) is derived; set generator_steps instead "
            "and leave trainer.max_steps out")


def check_writable_folder(folder: str | os.PathLike, option: str) -> None:
    """Create ``folder`` if needed and write a file in it: an output folder that cannot be written would otherwise
    fail at the first file a logger or checkpoint writes, as an OSError traceback after the model was built."""
    from gan.utils.files import folder_write_problem

    problem = folder_write_problem(folder)
    if problem is not None:
        raise ConfigError(f"{option}={folder}: cannot write there ({problem}); expected a folder this user can create "
                          "and write")


def check_evaluate_options(cfg: DictConfig) -> None:
    """evaluate.py's counts, seeds, ``device`` and ``use_ema``, that ``fake_path`` comes alone, and that the output
    folder can be written (as train.py checks it: a file in its place failed with a FileExistsError traceback only
    after the checkpoint, the metrics and the data were loaded)."""
    check_integer_options(cfg, EVALUATE_OPTIONS)
    check_path_options(cfg, ("ckpt_path", "ckpt_name", "fake_path", "compare_with"))
    check_metrics_options(cfg)
    seeds = cfg.get("seeds")
    if seeds is not None and (not OmegaConf.is_list(seeds) or not seeds or not all(is_integer(seed) for seed in seeds)):
        raise ConfigError(f"seeds={seeds} is not valid: expected a list of integers (e.g. seeds=[0,1,2]) or null")
    values = [int(seed) for seed in seeds or []]
    outside = [seed for seed in values if not SEED.minimum <= seed <= SEED.maximum]
    if outside:  # numpy's range, as for seed (a latent seed seeds numpy too)
        raise ConfigError(f"seeds={seeds}: {outside[0]} is outside 0 .. {SEED.maximum}; expected latent seeds in that range")
    repeated = sorted({seed for seed in values if values.count(seed) > 1})
    if repeated:  # the same latent seed gives the same evaluation, so the summary's spread would be made up
        raise ConfigError(f"seeds={seeds} repeats {repeated}: expected distinct latent seeds")
    if cfg.get("fake_path") and cfg.get("ckpt_path"):
        raise ConfigError(f"ckpt_path={cfg.ckpt_path} and fake_path={cfg.fake_path}: evaluate.py scores a checkpoint's "
                          "generator or a folder of images; give one of them")
    if cfg.get("fake_path") and cfg.get("compare_with"):
        raise ConfigError(f"compare_with={cfg.compare_with} with fake_path={cfg.fake_path}: a comparison is of checkpoints' "
                          "runs; expected ckpt_path= with compare_with=")
    if cfg.get("fake_path") and seeds is not None:
        raise ConfigError(f"seeds={seeds} with fake_path={cfg.fake_path}: a folder of images has no latent seeds; "
                          "expected seeds=null")
    if not isinstance(cfg.get("use_ema"), bool):
        raise ConfigError(f"use_ema={cfg.get('use_ema')} is not valid: expected true or false")
    device = cfg.get("device")
    if device != "auto":
        from gan.utils.device import check_torch_device

        check_torch_device(device)
    output_dir = (cfg.get("paths") or {}).get("output_dir")
    if output_dir:  # last: it creates the folder, which a refused option should not leave behind
        check_writable_folder(output_dir, "paths.output_dir")
