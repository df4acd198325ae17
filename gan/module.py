"""GANModule: one LightningModule for every GAN variant.

It orchestrates the phases of a GAN iteration with manual optimization and holds no loss math: the
adversarial loss, the discriminator penalties, the augmentation and the schedules are injected objects (picked
by config); weight clipping, label targets, instance noise, feature matching and the EMA are module options,
each a small tested object or function built from them (gan/losses/tricks.py, gan/ema.py).

One iteration is ``n_critic`` discriminator updates, each on its own real batch, then ``n_generator``
generator updates. One training batch holds ``iterations_per_batch`` iterations (``auto``: as many as fit
between the cadences that act at batch ends, see gan/batching.py): the data loader yields
``real_batches_per_training_step`` real batches at once (concatenated), so Lightning's per-batch machinery
runs once for all of them, and a resumed run continues the data stream exactly, with its batches where they were
(``resume_from_batch_start``).
Callbacks that watch every iteration implement ``on_gan_iteration_end(trainer, module)``, which the module
calls after each iteration (Lightning's ``on_train_batch_end`` comes once per batch).

Units: ``discriminator_steps`` and ``generator_steps`` count optimizer updates of each network. Lightning's
``trainer.global_step`` counts BOTH (one D step + one G step = 2), so schedules here use generator steps.
"""
from __future__ import annotations

import logging
from functools import partial
from typing import Any, Callable, Iterable, Mapping, Sequence

import lightning.pytorch as pl
import torch
from lightning.pytorch.core.optimizer import LightningOptimizer
from torch import Tensor, nn

from gan.augment import Augment
from gan.batching import AUTO, count_iteration, resolve_iterations_per_batch
from gan.ema import GeneratorEMA
from gan.losses.adversarial import (AdversarialLoss, check_loss_class, check_loss_takes_targets, check_terms,
                                    discriminator_method, generator_method)
from gan.losses.penalties import Penalty, check_penalty_class, clip_weights, penalty_without_gradient
from gan.losses.tricks import InstanceNoise, LabelTargets, auxiliary_classification_loss, feature_matching_loss
from gan.nets.base import (Discriminator, DiscriminatorOutput, Generator, RowsOf, check_discriminator_class,
                           check_discriminator_output, check_generated, check_generator_class, eval_mode)
from gan.schedules import Setting
from gan.utils.errors import ConfigError
from gan.utils.targets import class_path

log = logging.getLogger("gan")
#: the hooks this module calls on callbacks beyond Lightning's: after every GAN iteration (a training batch may hold
#: several), as ``callback.on_gan_iteration_end(trainer, module)``
GAN_CALLBACK_HOOKS = ("on_gan_iteration_end",)


def warn_if_the_critic_is_unconstrained(loss: AdversarialLoss, discriminator: nn.Module, penalties: Mapping,
                                        weight_clip: float | None, schedules: Mapping | None = None) -> None:
    """The Wasserstein loss is a distance estimate only for a Lipschitz critic (Arjovsky et al. 2017): without
    weight clipping, a penalty or spectral norm, D can raise real scores and lower fake ones without bound, and a
    run such as ``model=dcgan loss=wasserstein`` trained on without a word until its scores overflowed."""
    from gan.losses.adversarial import WassersteinLoss

    def weight_schedules(name: str) -> list:
        return [setting for setting in (schedules or {}).values()
                if getattr(setting, "sets", None) == "penalty" and getattr(setting, "penalty", None) == name
                and getattr(setting, "attribute", None) in ("weight", "gamma")]

    def lowest_weight(name: str, penalty) -> float:
        """The penalty's weight, or the lowest a schedule of it reaches: a schedule taking a gradient penalty's weight
        to 0 left the critic unconstrained from there without a word (an audit)."""
        scheduled = [setting.value.bounds()[0] for setting in weight_schedules(name)]
        # a schedule sets the weight before the first step, so the static value never acts then
        return min(scheduled) if scheduled else float(getattr(penalty, "weight", getattr(penalty, "gamma", 1.0)))

    # a penalty on D's input gradients (gradient penalty, R1, R2) constrains it, unless its weight is 0 (an audit: a
    # gradient penalty of weight 0 trained an unbounded critic without a word); LeCam's anchors do not (a review)
    if not isinstance(loss, WassersteinLoss) or weight_clip is not None or \
            any(getattr(penalty, "penalizes_input_gradients", False) and lowest_weight(name, penalty) > 0
                for name, penalty in penalties.items()):
        return
    if any(nn.utils.parametrize.is_parametrized(m) or m._forward_pre_hooks for m in discriminator.modules()):
        return  # spectral norm (a parametrization, or the hook-based version)
    scheduled = [name for name, penalty in penalties.items()
                 if getattr(penalty, "penalizes_input_gradients", False) and weight_schedules(name)]
    log.warning("loss=wasserstein with an unconstrained critic (no model.weight_clip, no gradient penalty in "
                "model.penalties%s, no spectral norm): its scores can grow without bound, so the loss is no distance "
                "estimate and the run tends to diverge; use model=wgan (weight clipping) or model=wgan_gp (gradient "
                "penalty), or add one", f" whose weight stays above 0 (a schedule takes model.penalties.{scheduled[0]}'s "
                "to 0)" if scheduled else "")


OptimizerFactory = Callable[..., torch.optim.Optimizer]
#: values GANModule.__setattr__ sets without nn.Module's registration checks (see there)
_PLAIN_VALUE_TYPES = frozenset({int, float, bool, str, type(None)})


def require_instance(option: str, value: object, kind: type, expected: str) -> None:
    """An injected object of the wrong kind (``model.augment=diffaugment`` sets a string where a config was
    meant) fails here, naming the option, instead of as a TypeError in the middle of the first step."""
    if not isinstance(value, kind):
        article = "an" if kind.__name__[0] in "AEIOU" else "a"
        raise ConfigError(f"{option} must be {article} {kind.__name__} ({expected}), got {type(value).__name__} {value!r:.80}")


def _single_device_unscaled(trainer: pl.Trainer) -> bool:
    """One device, and a precision plugin whose backward and optimizer step add nothing to the plain ones:
    32-bit, or bf16 autocast (which has no loss scaler; autocast itself wraps the training step either way)."""
    from lightning.pytorch.plugins.precision import MixedPrecision, Precision
    from lightning.pytorch.strategies import SingleDeviceStrategy

    plugin = trainer.precision_plugin
    unscaled = type(plugin) is Precision or (type(plugin) is MixedPrecision and plugin.scaler is None)
    return type(trainer.strategy) is SingleDeviceStrategy and unscaled


def _overrides(obj: object, base: type, hook: str) -> bool:
    return getattr(type(obj), hook) is not getattr(base, hook)


def lightning_backward_is_plain(trainer: pl.Trainer, module: pl.LightningModule) -> bool:
    """Whether ``manual_backward`` reduces to ``loss.backward()`` for this run: a single-device strategy,
    32-bit or bf16-mixed precision, and no callback or module hook around the backward pass."""
    hooks = ("on_before_backward", "on_after_backward")
    overridden = any(_overrides(callback, pl.Callback, hook) for callback in trainer.callbacks for hook in hooks)
    overridden |= any(_overrides(module, pl.LightningModule, hook) for hook in hooks)
    return _single_device_unscaled(trainer) and not overridden


def lightning_step_is_plain(trainer: pl.Trainer, module: pl.LightningModule) -> bool:
    """Whether a manual-optimization ``LightningOptimizer.step()`` reduces to the callbacks'
    ``on_before_optimizer_step`` hooks, ``optimizer.step()`` and the step counter (Lightning 2.x: strategy ->
    precision plugin -> a closure that calls the hooks and clips gradients): one device, 32-bit or bf16-mixed,
    no profiler, no gradient clipping and no module hook on the step."""
    from lightning.pytorch.profilers import PassThroughProfiler

    return (_single_device_unscaled(trainer) and type(trainer.profiler) is PassThroughProfiler
            and not trainer.gradient_clip_val and not _overrides(module, pl.LightningModule, "on_before_optimizer_step"))


def without_unset_options(factory: OptimizerFactory) -> OptimizerFactory:
    """The optimizer factory with its options set to null left out (at the optimizer's default), so a config
    merged over another can switch the optimizer class: a per-data preset turning SGD into Adam sets
    ``momentum: null``."""
    if not isinstance(factory, partial):
        return factory
    return partial(factory.func, *factory.args, **{k: v for k, v in factory.keywords.items() if v is not None})


class frozen:
    """``with frozen(parameters):`` the parameters (a network's, in the other network's update phase) take no
    gradient inside the block: backward then skips their weight gradients, and they keep ``grad`` None. Those
    frozen already stay frozen. Reusable: the module builds one for D's parameters when training starts (a
    generator-based context manager cost ~10 us per G step in place, of a ~0.7 ms tiny-network G step)."""

    def __init__(self, parameters: Iterable[nn.Parameter]):
        self.parameters = list(parameters)
        self._toggled: list[nn.Parameter] = []

    def __enter__(self) -> None:
        self._toggled = [p for p in self.parameters if p.requires_grad]
        for p in self._toggled:
            p.requires_grad_(False)

    def __exit__(self, *exc_info) -> None:
        for p in self._toggled:
            p.requires_grad_(True)
        self._toggled = []


class GANModule(pl.LightningModule):
    """Alternating GAN training.

    Args:
        generator, discriminator: the two networks.
        loss: an :class:`AdversarialLoss` (both objectives on logits).
        optimizer: ``{"generator": factory, "discriminator": factory}``; each factory takes ``params=``
            (Hydra ``_partial_: true`` optimizer configs).
        n_critic: discriminator updates per iteration (each on a fresh real batch).
        n_generator: generator updates per iteration, after the ``n_critic`` discriminator updates (each with
            fresh noise, and a fresh real batch when the loss compares against reals).
        penalties: named :class:`~gan.losses.penalties.Penalty` objects (gradient penalty, R1, R1 + R2, ...),
            each added to the discriminator loss before its single backward; None entries are off.
        schedules: named :class:`~gan.schedules.Setting` objects applied before every iteration from the
            generator step (learning rates, Adam betas, penalty weights, EMA half-life).
        augment: an :class:`~gan.augment.Augment` applied to every discriminator input (DiffAugment, ADA).
        weight_clip: clamp every discriminator parameter to [-c, c] after each D update (WGAN).
        ema_decay: keep an exponential moving average of the generator (used for samples and metrics once
            it has been updated; a half-life schedule may set the decay).
        ema_start: generator step from which the average is updated (its first update copies the weights).
        num_fixed_samples, fixed_noise_seed: the fixed latent codes used for sample grids.
        real_label, real_label_range, label_flip_prob: the targets the discriminator loss sees
            (:class:`~gan.losses.tricks.LabelTargets`: one-sided smoothing, noisy real labels, flips).
        instance_noise_std, instance_noise_steps, instance_noise_schedule: Gaussian noise on every
            discriminator input, its std annealed from ``instance_noise_std`` to 0 over that many generator steps.
        feature_matching_weight, feature_matching_layer: add weight * feature matching on that discriminator
            block's output (an index into ``Discriminator.evaluate(...).features``) to the generator loss;
            ``adversarial_generator_loss=False`` leaves feature matching alone (Salimans et al. 2016).
        auxiliary_weight: weight of the auxiliary classifier's cross-entropy (AC-GAN discriminators).
        iterations_per_batch: GAN iterations per Lightning training batch, or ``auto`` (the largest number up to
            10 that every batch-end cadence is a multiple of; see gan/batching.py). Lightning's per-batch work is
            then paid once for all of them; the updates, the data stream, the logging cadence and the logged steps
            are the same as with one iteration per batch, and a run may resume with another value.

    Conditional networks (``num_classes`` set) are trained on the batch's labels: the fakes of a step are
    generated for the labels of that step's real batch, so both phases see the data's class balance.

    ``last_terms`` holds the newest value of every term (detached tensors on the module's device, or
    numbers, keyed as they are logged, e.g. ``train/d/loss``; a D term is the last value a D step computed),
    for callbacks that watch every iteration without forcing a device sync. They are logged on Lightning's
    logging steps only (every ``trainer.log_every_n_steps`` iterations) and at the last iteration.
    """

    def __init__(
        self,
        generator: Generator,
        discriminator: Discriminator,
        loss: AdversarialLoss,
        optimizer: Mapping[str, OptimizerFactory],
        n_critic: int = 1,
        n_generator: int = 1,
        penalties: Mapping[str, Penalty | None] | None = None,
        schedules: Mapping[str, Setting | None] | None = None,
        augment: Augment | None = None,
        weight_clip: float | None = None,
        ema_decay: float | None = None,
        ema_start: int = 0,
        num_fixed_samples: int = 1024,
        fixed_noise_seed: int = 0,
        real_label: float = 1.0,
        real_label_range: tuple[float, float] | None = None,
        label_flip_prob: float = 0.0,
        instance_noise_std: float = 0.0,
        instance_noise_steps: int = 1,
        instance_noise_schedule: str = "linear",
        feature_matching_weight: float = 0.0,
        feature_matching_layer: int = -1,
        adversarial_generator_loss: bool = True,
        auxiliary_weight: float = 1.0,
        iterations_per_batch: int | str = AUTO,
    ):
        super().__init__()
        require_instance("model.generator", generator, Generator, "a generator config with a _target_, e.g. arch=resnet; "
                         "a class of one's own subclasses gan.nets.Generator")
        require_instance("model.discriminator", discriminator, Discriminator, "a discriminator config with a _target_; a "
                         "class of one's own subclasses gan.nets.Discriminator")
        if not isinstance(loss, AdversarialLoss):
            # led by its key (``loss._target_``): a message starting with a bare ``loss`` was led by "model: " (an audit)
            raise ConfigError(f"loss._target_={class_path(loss)} is no gan.losses.AdversarialLoss: a loss of one's own "
                              f"must subclass it (and define _d and _g), or choose one with loss=<name>, e.g. loss=hinge; "
                              f"got {type(loss).__name__} {loss!r:.80}")
        check_loss_class(loss)
        check_generator_class(generator)
        check_discriminator_class(discriminator, float(feature_matching_weight) > 0)
        for name, penalty in (penalties or {}).items():
            if penalty is not None:
                require_instance(f"model.penalties.{name}", penalty, Penalty, "a config with a _target_, e.g. "
                                 "gan.losses.R1Penalty, or null; a class of one's own subclasses gan.losses.Penalty")
                check_penalty_class(penalty, f"model.penalties.{name}")
        for name, setting in (schedules or {}).items():
            if setting is not None:
                require_instance(f"model.schedules.{name}", setting, Setting, "a config with a _target_, e.g. gan.schedules.OptimizerSetting, or null")
        if augment is not None:
            require_instance("model.augment", augment, Augment, "choose it with augment=diffaugment or augment=ada, or augment=null")
        for name, value in (("n_critic", n_critic), ("n_generator", n_generator)):
            if int(value) < 1:
                raise ConfigError(f"model.{name} must be a positive integer, got {value}")
        if iterations_per_batch != AUTO and not (isinstance(iterations_per_batch, int) and iterations_per_batch >= 1):
            raise ConfigError(f"model.iterations_per_batch must be a positive integer or auto, got {iterations_per_batch!r}")
        # weights and bounds below 0 are no weaker setting but another one: a negative clip bound clamps every D
        # weight to it (torch.clamp with min > max), a negative weight turned feature matching off silently
        for name, value, valid, expected in (
                ("weight_clip", weight_clip, lambda v: v > 0, "a number > 0, or null (no clipping)"),
                ("feature_matching_weight", feature_matching_weight, lambda v: v >= 0, "a number >= 0"),
                ("auxiliary_weight", auxiliary_weight, lambda v: v >= 0, "a number >= 0"),
                ("ema_start", ema_start, lambda v: v >= 0, "an integer >= 0")):
            if value is not None and not valid(float(value)):
                raise ConfigError(f"model.{name}={value}: expected {expected}")
        if set(optimizer) != {"generator", "discriminator"}:
            raise ConfigError(f"optimizer config needs exactly 'generator' and 'discriminator', got {sorted(optimizer)}")
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator
        #: whether the D step passes real and fake samples through D together (see discriminate_real_and_fake)
        self.joint_discriminator_pass = discriminator.samples_independent
        self.loss = loss
        self.penalties = nn.ModuleDict({name: p for name, p in (penalties or {}).items() if p is not None})
        self.augment = augment
        self.optimizer_factories = dict(optimizer)
        self.n_critic = int(n_critic)
        self.n_generator = int(n_generator)
        self.iterations_per_batch_setting = iterations_per_batch
        #: the number in use: ``auto`` is resolved when a fit is set up (it depends on the trainer's cadences)
        self.iterations_per_batch = 1 if iterations_per_batch == AUTO else iterations_per_batch
        #: iterations of the next training batch a resumed run had trained already (:meth:`resume_from_batch_start`)
        self._iterations_to_skip = 0
        #: whether the last training batch logged its own terms (see on_train_batch_end)
        self._logged_this_batch = False
        self.weight_clip = weight_clip
        self.ema_start = int(ema_start)
        self.generator_ema = GeneratorEMA(generator, ema_decay) if ema_decay is not None else None
        noise = torch.randn(num_fixed_samples, generator.latent_dim, generator=torch.Generator().manual_seed(fixed_noise_seed))
        self.register_buffer("fixed_noise", noise)
        self.label_targets = LabelTargets(real_label, real_label_range, label_flip_prob)
        warn_if_the_critic_is_unconstrained(loss, discriminator, self.penalties, weight_clip,
                                            {name: s for name, s in (schedules or {}).items() if s is not None})
        if self.label_targets.active and not getattr(loss, "has_targets", False):
            raise ConfigError(f"label smoothing / noisy / flipped labels need a loss with real and fake targets, but "
                              f"{type(loss).__name__} has none; use loss=non_saturating, minimax or least_squares")
        if self.label_targets.active:
            check_loss_takes_targets(loss, self.label_targets.options)
        self.instance_noise = InstanceNoise(instance_noise_std, instance_noise_steps, instance_noise_schedule)
        # a discriminator of one's own with its own evaluate may have no blocks; it then has no feature matching either
        blocks = len(discriminator.blocks) if hasattr(discriminator, "blocks") else None
        if blocks is not None and not -blocks <= int(feature_matching_layer) < blocks:
            raise ConfigError(f"model.feature_matching_layer={feature_matching_layer} is out of range for a discriminator "
                              f"with {blocks} blocks (expected -{blocks} .. {blocks - 1})")
        if not adversarial_generator_loss and float(feature_matching_weight) <= 0:
            raise ConfigError("model.adversarial_generator_loss=false leaves the generator no objective: set "
                              "model.feature_matching_weight > 0")
        self.feature_matching_weight, self.feature_matching_layer = float(feature_matching_weight), int(feature_matching_layer)
        self.adversarial_generator_loss = bool(adversarial_generator_loss)
        self.auxiliary_weight = float(auxiliary_weight)
        if generator.num_classes != discriminator.num_classes:
            raise ConfigError(f"the generator is built for num_classes={generator.num_classes} but the discriminator "
                              f"for num_classes={discriminator.num_classes}")
        self.schedules = {name: s for name, s in (schedules or {}).items() if s is not None}
        for name, setting in self.schedules.items():
            setting.name = name
            setting.check(self, name)
        self.generator_steps = 0
        self.discriminator_steps = 0
        self.last_terms: dict[str, Tensor] = {}
        #: whether Lightning's manual_backward would only call loss.backward() (decided when training starts)
        self._plain_backward = False
        #: the callbacks whose on_before_optimizer_step a plain optimizer step calls (None: use Lightning's step)
        self._step_hook_callbacks: list[pl.Callback] | None = None
        #: the callbacks with an on_gan_iteration_end hook, called after every iteration (listed when training starts)
        self._iteration_observers: list[pl.Callback] = []
        #: D's parameters, listed once when training starts (walking the module tree costs ~10-20 us a time,
        #: which the D phase's backward and the G phase's freezing would pay at every step)
        self._discriminator_parameters: list[nn.Parameter] | None = None
        #: the G phase's freezing of D's parameters, built when training starts (None: built per step)
        self._frozen_discriminator: frozen | None = None
        #: the resolved run configuration, stored in every checkpoint so a generator can be rebuilt from it
        self.run_config: dict[str, Any] | None = None
        #: the run's starts as gan.utils.provenance records them (set by train.py on the process that saves)
        self.provenance: list[dict[str, Any]] | None = None
        #: whether the next D / G step checks what the pieces of one's own return (the generator's samples, D's logits,
        #: the loss's and penalties' terms): on the first step of each in this process only, so the training loop pays
        #: one attribute read a step for it; the checks read shapes and types, draw no random number and run nothing
        self._check_next_discriminator_step = True
        self._check_next_generator_step = True
        #: the penalties whose terms have not been checked yet (a lazy penalty's first step may come later)
        self._unchecked_penalties: set[str] = set(self.penalties)
        #: the penalties whose returned types were checked; one stays in ``_unchecked_penalties`` while its loss is a
        #: detached 0 (a warm-up's skipped step, or a loss detached by mistake: asked again, see _check_penalty_terms)
        self._penalties_with_checked_terms: set[str] = set()

    def __setattr__(self, name: str, value: Any) -> None:
        # The step counters (at every update) and Lightning's ``_current_fx_name`` (at every hook call) are plain
        # values set in the training loop; nn.Module's __setattr__ first checks whether a value is a parameter,
        # module or buffer to register (~1 us a call, ~4 calls per tiny-network iteration). A plain value for a
        # name that is already a plain attribute needs none of that (nn.Module keeps registered names out of
        # ``__dict__``), so it is set directly.
        if type(value) in _PLAIN_VALUE_TYPES and name in self.__dict__:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    # ----------------------------------------------------------------------------------------- sampling
    @property
    def sampling_generator(self) -> Generator:
        """The generator to show and score: the EMA copy once it has been updated (before ``ema_start`` it is
        still the untrained initial copy, so the raw generator is shown instead)."""
        if self.generator_ema is not None and self.generator_ema.has_average:
            return self.generator_ema.averaged()
        return self.generator

    @property
    def num_classes(self) -> int | None:
        return self.generator.num_classes

    @property
    def real_batches_per_iteration(self) -> int:
        """Real batches one iteration uses: one per D step, plus one per G step for a loss that compares fakes
        with reals in the generator step (R3GAN draws a fresh real batch for it)."""
        return self.n_critic + (self.n_generator if self.loss.generator_needs_real else 0)

    @property
    def real_batches_per_training_step(self) -> int:
        """Real batches one training batch holds (the data module reads this): every iteration's."""
        return self.iterations_per_batch * self.real_batches_per_iteration

    @property
    def iterations_trained(self) -> int:
        """Finished GAN iterations (checkpointed through ``generator_steps``)."""
        return self.generator_steps // self.n_generator

    def resume_from_batch_start(self) -> int:
        """Sets the first training step of a resumed run to skip the iterations it trained of the batch its last
        iteration was in, and returns the real batches of the data stream before that batch, where the data stream
        restarts (called once, by :class:`~gan.callbacks.resume.ResumeState`). A run saved inside a batch
        (a signal, or a run that ended inside one) and restarted at its next iteration ran its batches shifted, so
        every cadence chosen to fall on batch ends (log_every_n_steps, checkpoint intervals, grids, metrics) missed
        them for the rest of the run (an audit: no loss rows, no interval checkpoints after the resume)."""
        self._iterations_to_skip = self.iterations_trained % self.iterations_per_batch
        return (self.iterations_trained - self._iterations_to_skip) * self.real_batches_per_iteration

    @torch.no_grad()
    def sample_fixed(self, n: int | None = None, labels: Tensor | None = None) -> Tensor:
        """Samples for the first ``n`` fixed latent codes, generator in eval mode.

        A conditional generator takes ``labels`` (classes cycle 0, 1, 2, ... when none are given); more
        labels than codes reuse the codes cyclically, so ``n`` codes x K rows of labels give a grid whose
        columns share a code.
        """
        generator = self.sampling_generator
        z = self.fixed_noise[:n]
        if labels is None and self.num_classes is not None:
            labels = torch.arange(z.size(0), device=z.device) % self.num_classes
        if labels is not None and len(labels) != z.size(0):
            z = z[torch.arange(len(labels), device=z.device) % z.size(0)]
        with eval_mode(generator):
            return generator(z, labels)

    def setup(self, stage: str) -> None:
        if stage == "fit" and self._trainer is not None:  # before the data loader is built: it reads the value
            self.iterations_per_batch = resolve_iterations_per_batch(self.iterations_per_batch_setting, self.trainer, self)
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is not None:
            self.check_data_classes(datamodule)

    def check_data_classes(self, datamodule) -> None:
        """A conditional model needs data with its number of classes. Also called by train.py before the loggers
        start, so the refusal is not preceded by W&B's start-up lines and an empty W&B run."""
        if self.num_classes is None:
            return
        data_classes = getattr(datamodule, "num_classes", None)
        name = getattr(datamodule, "name", type(datamodule).__name__)
        if data_classes is None:
            raise ConfigError(f"a conditional model needs labelled data with {self.num_classes} classes, but data {name} "
                              f"has num_classes={data_classes}; use labelled data (e.g. data=digits) or an unconditional model")
        if data_classes != self.num_classes:  # it told labelled data to use labelled data (an audit)
            raise ConfigError(f"model.generator.num_classes={self.num_classes}, but data {name} has {data_classes} classes; "
                              f"expected {data_classes} (the default follows the data: leave num_classes out)")

    def check_batch_size(self, batch_size: int) -> None:
        """Batch norm over a batch of one vector has nothing to normalise over: torch raised "Expected more than 1
        value per channel when training" at the first step (an audit: ``data.batch_size=1`` on the toys)."""
        if batch_size > 1:
            return
        for name, network in (("generator", self.generator), ("discriminator", self.discriminator)):
            if any(isinstance(layer, nn.BatchNorm1d) for layer in network.modules()):
                raise ConfigError(f"data.batch_size={batch_size}: the {name} normalises its layers over the batch "
                                  f"(BatchNorm1d), which needs 2 samples or more; expected data.batch_size >= 2")

    def discriminate(self, x: Tensor, labels: Tensor | None) -> DiscriminatorOutput:
        """The discriminator as both phases see it: instance noise (scheduled by the checkpointed generator
        step, so a resumed run continues exactly), then the augmentation, then D, given labels only when its
        logit depends on them (not for AC-GAN)."""
        if self.instance_noise.active:
            x = self.instance_noise(x, self.generator_steps)
        if self.augment is not None:
            x = self.augment(x)
        return self.discriminator.evaluate(x, labels if self.discriminator.takes_labels else None)

    # ----------------------------------------------------------------------------------------- training
    def configure_optimizers(self):
        return [self._build_optimizer(network, parameters)
                for network, parameters in zip(("generator", "discriminator"), self.optimized_parameters())]

    def optimized_parameters(self) -> list[list[Tensor]]:
        """The parameters each optimizer of :meth:`configure_optimizers` steps, in its order (what a checkpoint's
        optimizer states must fit)."""
        return [list(getattr(self, network).parameters()) for network in ("generator", "discriminator")]

    def _build_optimizer(self, network: str, parameters: list[Tensor]) -> torch.optim.Optimizer:
        try:
            optimizer = without_unset_options(self.optimizer_factories[network])(params=parameters)
        except ValueError as error:  # torch's optimizers refuse a negative lr, betas outside [0, 1), ...
            raise ConfigError(f"optimizer.{network}: {error}") from None
        if optimizer.defaults.get("eps") == 0:  # torch allows it; an r3gan toy run turned to NaN at generator step 2
            log.warning(f"optimizer.{network}.eps=0: {type(optimizer).__name__} divides each update by the root of the "
                        f"gradients' second moment plus eps, so every weight whose gradient is exactly 0 becomes NaN "
                        f"(0 / 0) at its first step; torch's default is 1e-8")
        return optimizer

    def optimizer_preview(self, network: str) -> torch.optim.Optimizer | None:
        """The optimizer ``network`` will get, built on one throwaway parameter, so the schedules can check the
        hyperparameters they set before training (None when it cannot be built: its own build says why then; and for a
        subclass that builds its optimizers otherwise)."""
        if type(self).configure_optimizers is not GANModule.configure_optimizers:
            return None
        try:
            return without_unset_options(self.optimizer_factories[network])(params=[nn.Parameter(torch.zeros(1))])
        except Exception:  # noqa: BLE001 - any failure is reported where the real optimizer is built
            return None

    def optimizer_of(self, network: str) -> torch.optim.Optimizer:
        """The optimizer of ``generator`` or ``discriminator`` (schedules set its hyperparameters)."""
        opt_g, opt_d = self.optimizers(use_pl_optimizer=False)
        return {"generator": opt_g, "discriminator": opt_d}[network]

    def training_step(self, batch, batch_idx: int) -> None:
        """``iterations_per_batch`` iterations (see ``train_iteration``), each followed by the iteration observers;
        it stops early where the run ends (``max_steps``, or a callback asked to stop)."""
        real, labels = (batch[0], batch[1]) if isinstance(batch, (tuple, list)) else (batch, None)
        reals = self._split_training_batch(real)
        label_chunks = self._split_training_batch(labels) if self.num_classes is not None else [None] * len(reals)
        # the raw optimizers where the module steps them itself (see step_optimizer): no LightningOptimizer
        # delegation at every zero_grad and step
        optimizers = self.optimizers(use_pl_optimizer=self._step_hook_callbacks is None)
        per_iteration, trainer = self.real_batches_per_iteration, self._trainer
        skip, self._iterations_to_skip = self._iterations_to_skip, 0  # trained before a resume (resume_from_batch_start)
        for i in range(skip, self.iterations_per_batch):
            if i > skip:
                count_iteration(trainer)  # Lightning's logging counter counts iterations, not batches
            chunk = slice(i * per_iteration, (i + 1) * per_iteration)
            self.train_iteration(reals[chunk], label_chunks[chunk], *optimizers)
            for observer in self._iteration_observers:
                observer.on_gan_iteration_end(trainer, self)
            if self.is_last_iteration or (trainer is not None and trainer.should_stop):
                break
        if self.is_last_iteration and trainer is not None:
            # Lightning writes a batch's logged values to the loggers on its logging steps or when training is
            # asked to stop, not when max_steps is reached: the last iteration's values reached only
            # trainer.callback_metrics. Training ends after this batch either way.
            trainer.should_stop = True
        self._logged_this_batch = self.is_logging_step or self.is_last_iteration
        if self._logged_this_batch:
            # only on logging steps (each self.log call costs about as much as a tiny network's update), and
            # at the end, so the final values are in trainer.callback_metrics and the loggers
            self.log_terms()

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        """A callback's batch-end hook asked training to stop (``trainer.max_time``'s Timer; a health check's stop
        found at a checkpoint save): Lightning then writes the batch's logged values to the loggers, which were the
        last logging step's unless the batch logged its own (an audit: a max_time run's last CSV row repeated step
        50's losses as step 60's, and a run stopped before step 50 wrote no metrics.csv). Called after every
        callback's hook, before Lightning writes. Only where the loop does stop (not below ``trainer.min_steps``): a
        value logged from this hook outlives its batch in Lightning's results and is written over the training step's
        own at every later logging step (a review)."""
        trainer = self._trainer
        stops = trainer is not None and trainer.should_stop and trainer.fit_loop._can_stop_early
        if stops and not self._logged_this_batch:  # every rank stops at the same batch (the stops are agreed)
            self._logged_this_batch = True
            self.log_terms()

    def log_terms(self) -> None:
        """Log ``last_terms``. Under DDP each rank computed its terms on its share of the global batch; the logged
        value is their mean over the ranks (one all-reduce of every term together, on logging steps only), which for
        a per-sample mean (the losses, penalties, scores) equals the value on the global batch. Rank 0's own values
        were logged before (2026-12-06): a noisier estimate, and a monitored training term could differ between
        the ranks."""
        terms = self.last_terms
        trainer = self._trainer
        if trainer is not None and trainer.world_size > 1:
            # sorted: the one collective must stack the same terms in the same order on every rank
            names = sorted(name for name, value in terms.items() if isinstance(value, Tensor))
            if names:
                # torch's own all-reduce: the strategy's reduce adds a barrier before it (two collectives)
                sums = torch.stack([terms[name].float() for name in names])
                torch.distributed.all_reduce(sums)
                terms = {**terms, **dict(zip(names, (sums / trainer.world_size).unbind()))}
        self.log_dict(terms, on_step=True, on_epoch=False)

    def train_iteration(self, reals: Sequence[Tensor], labels: Sequence[Tensor | None], opt_g, opt_d) -> None:
        """One iteration on its real batches: the schedules' values, ``n_critic`` D steps, then ``n_generator`` G
        steps; its terms go to ``last_terms``."""
        # merged into, not replaced: a lazy penalty's term keeps the value of the last step that computed it
        terms = self.last_terms
        for name, setting in self.schedules.items():
            terms[f"train/schedule/{name}"] = setting.apply(self, self.generator_steps)
        d_terms: dict[str, Tensor] = {}
        for i in range(self.n_critic):
            # each term keeps the last D step's value that computed it: a lazy penalty firing on an earlier D step
            # (interval = n_critic fires on the first) was dropped with its step's terms, so never logged or checked
            # (a review); the others skip their diagnostics
            d_terms.update(self.discriminator_step(reals[i], opt_d, labels[i], diagnostics=i == self.n_critic - 1))
        for j in range(self.n_generator):
            # a loss that compares with reals gets a fresh batch; otherwise G sees the last D step's reals
            # (their size and labels set the fakes'; feature matching compares with them)
            k = self.n_critic + j if self.loss.generator_needs_real else self.n_critic - 1
            g_terms = self.generator_step(reals[k], opt_g, labels[k])
            self.update_ema()
        # kept without their graphs (the diagnostics have none: a detached copy of them would be one more
        # tensor to make per term and iteration)
        for name, value in d_terms.items():
            terms[f"train/d/{name}"] = value.detach() if value.requires_grad else value
        for name, value in g_terms.items():
            terms[f"train/g/{name}"] = value.detach() if value.requires_grad else value
        terms["train/generator_step"] = self.generator_steps

    @property
    def is_last_iteration(self) -> bool:
        """After this iteration's updates: whether the run has reached ``trainer.max_steps``."""
        trainer = self._trainer
        return trainer is not None and trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps

    @property
    def is_logging_step(self) -> bool:
        """Whether Lightning writes this iteration's logged values (every ``trainer.log_every_n_steps`` GAN
        iterations: :func:`~gan.batching.count_iteration` makes Lightning's counter count iterations); False outside a
        running fit loop. Lightning has no public accessor for its decision."""
        trainer = self._trainer
        return trainer is not None and trainer._active_loop is not None and trainer._logger_connector.should_update_logs

    def _split_training_batch(self, batch: Tensor) -> tuple[Tensor, ...]:
        chunks = self.real_batches_per_training_step
        if batch.size(0) % chunks:
            raise ConfigError(f"a training batch of {batch.size(0)} samples cannot be split into the {chunks} real batches "
                              f"it is for (n_critic={self.n_critic}, iterations_per_batch={self.iterations_per_batch}); "
                              f"the data module must yield batch_size x {chunks} samples per batch")
        return batch.chunk(chunks) if chunks > 1 else (batch,)

    def discriminator_step(self, real: Tensor, optimizer, labels: Tensor | None = None,
                           diagnostics: bool = True) -> dict[str, Tensor]:
        """One D update; returns its terms. ``diagnostics=False`` leaves out the terms that only inform (D's mean
        scores, the auxiliary classifier's accuracy, the instance-noise std, the augmentation's statistics): a
        kernel launch or two each, eight per WGAN-GP iteration, which a GPU step bound by launches pays for
        values nobody reads; the update itself is the same."""
        with torch.no_grad():
            fake = self.generator(self.generator.noise(real.size(0), device=real.device), labels)
        check = self._check_next_discriminator_step
        if check:  # before the fakes meet the reals (torch.cat, D's own shape check)
            check_generated(self.generator, fake, real)
        penalties = [(name, p) for name, p in self.penalties.items() if self.discriminator_steps % p.interval == 0]
        # penalties that differentiate D at its inputs reuse the loss's forward pass (see gan/losses/penalties.py)
        wanted = {side for _, penalty in penalties for side in penalty.input_gradients}
        if "real" in wanted:
            real = real.detach().requires_grad_(True)
        if "fake" in wanted:
            fake = fake.requires_grad_(True)
        real_out, fake_out = self.discriminate_real_and_fake(real, fake, labels)
        targets = self.label_targets(real.size(0), real.device) if self.label_targets.active else {}
        terms = self.loss.discriminator_loss(real_out.logits, fake_out.logits, **targets)
        if check:
            check_terms(terms, f"loss._target_={class_path(self.loss)}", discriminator_method(self.loss, bool(targets)),
                        needs_gradient=True)
        total = terms["loss"]
        if real_out.class_logits is not None:
            terms["class_loss"] = (auxiliary_classification_loss(real_out.class_logits, labels)
                                   + auxiliary_classification_loss(fake_out.class_logits, labels))
            if diagnostics:
                terms["class_accuracy"] = (real_out.class_logits.argmax(dim=1) == labels).float().mean()
            total = total + self.auxiliary_weight * terms["class_loss"]
        if penalties:
            critic = lambda x: self.discriminate(x, labels).logits  # noqa: E731 - the loss's view of D
            unchecked = self._unchecked_penalties
            for name, penalty in penalties:
                penalty_terms = penalty(critic, real, fake, real_out.logits, fake_out.logits)
                if unchecked and name in unchecked:
                    self._check_penalty_terms(name, penalty, penalty_terms)
                total = total + penalty_terms.pop("loss")
                terms.update(penalty_terms)
        if self.penalties or real_out.class_logits is not None:
            # the adversarial part alone, whose lowest value the health check knows (the total's includes the class
            # loss and penalties, so an overpowering AC-GAN or R1-penalised D could not be seen: a review); kept for
            # every step of such a run, so a lazy penalty's step does not leave an older value in place
            terms["adversarial"] = terms["loss"]
        terms["loss"] = total
        if diagnostics:
            terms["real_score"] = self.loss.score(real_out.logits)
            terms["fake_score"] = self.loss.score(fake_out.logits)
            if self.instance_noise.active:
                # filled on the device: torch.tensor(value, device=...) is a blocking copy, a GPU wait every iteration
                terms["instance_noise_std"] = torch.full((), self.instance_noise.std(self.generator_steps), device=real.device)
        optimizer.zero_grad(set_to_none=True)
        # inputs that require grad for a penalty would also get d total / d input, which nothing uses: the
        # backward pass is restricted to D's parameters then
        self.backward_pass(total, inputs=[p for p in self.discriminator_parameters if p.requires_grad] if wanted else None)
        self.step_optimizer(optimizer)
        if self.weight_clip is not None:
            clip_weights(self.discriminator, float(self.weight_clip))
        if self.augment is not None:
            # every step: ADA's probability follows every real batch, read from the loss's decision boundary
            self.augment.observe(self.loss.real_margin(real_out.logits.detach()))
            if diagnostics:
                terms.update(self.augment.terms())
        self.discriminator_steps += 1
        if check:
            self._check_next_discriminator_step = False
        return terms

    def _check_penalty_terms(self, name: str, penalty: Penalty, terms: object) -> None:
        """What a penalty returned at its applications until its loss is known to have a gradient (see ``check_terms``
        for the types, read at its first application in this process); a loss that is not 0 but has no gradient is said
        once: the penalty then does nothing. A detached 0 is no alarm yet (a penalty of one's own may return it on the
        steps it skips, or over a warm-up), so the question stays open: a Python number is asked again at every
        application (no device read), a tensor at the applications on logging steps, whose values are read anyway, so
        a penalty that returns a detached 0 first and a detached value later adds no host synchronization to the
        other steps and is still said (it was taken for a warm-up and never asked again)."""
        who = f"model.penalties.{name}._target_={class_path(penalty)}"
        first_application = name not in self._penalties_with_checked_terms
        if first_application:
            check_terms(terms, who, "forward(critic, real, fake, real_logits, fake_logits)")
            self._penalties_with_checked_terms.add(name)
        loss = terms["loss"]
        if isinstance(loss, Tensor) and loss.requires_grad:  # answered: the penalty trains D
            self._unchecked_penalties.discard(name)
        elif isinstance(loss, Tensor) and not (first_application or self.is_logging_step):
            return  # a detached tensor is read where values are read anyway
        elif penalty_without_gradient(loss):
            value = float(loss.detach().float().sum()) if isinstance(loss, Tensor) else float(loss)
            log.warning("%s: its 'loss' (%.4g) has no gradient (detached, read with .item() or computed under no_grad), so "
                        "adding it to D's loss changes nothing and the penalty has no effect; return a tensor computed from "
                        "critic(x) or the logits it is given", who, value)
            self._unchecked_penalties.discard(name)
        # else a detached 0: asked again at a later application

    def discriminate_real_and_fake(self, real: Tensor, fake: Tensor, labels: Tensor | None) -> tuple[DiscriminatorOutput, DiscriminatorOutput]:
        """D's outputs for a real and a fake batch of the same size. A discriminator that treats every sample on
        its own (``Discriminator.samples_independent``: no batch norm, minibatch layer or spectral norm) sees both
        in one pass: the same logits from half the calls and matrix products twice as tall, which together with
        the penalty's one backward pass took r3gan's 2D iteration from ~36 to ~23-27 ms on 2 CPU cores
        (README, "Speed"). Instance noise and augmentation draw per sample either way."""
        if not self.joint_discriminator_pass:
            real_out, fake_out = self.discriminate(real, labels), self.discriminate(fake, labels)
            if self._check_next_discriminator_step:
                check_discriminator_output(self.discriminator, real_out, real.size(0))
                check_discriminator_output(self.discriminator, fake_out, fake.size(0))
            return real_out, fake_out
        both = self.discriminate(torch.cat([real, fake]), None if labels is None else torch.cat([labels, labels]))
        n = real.size(0)
        if self._check_next_discriminator_step:
            check_discriminator_output(self.discriminator, both, 2 * n)
        logits, class_logits = both.logits, both.class_logits
        # the blocks' features are split when read: the D step reads none of them (only feature matching does, in
        # the G step), and slicing every block's output for both halves cost ~5 us per D step (3 blocks, timed alone)
        return (DiscriminatorOutput(logits[:n], None if class_logits is None else class_logits[:n], RowsOf(both.features, 0, n)),
                DiscriminatorOutput(logits[n:], None if class_logits is None else class_logits[n:], RowsOf(both.features, n, None)))

    def generator_step(self, real: Tensor, optimizer, labels: Tensor | None = None) -> dict[str, Tensor]:
        """``real``: a real batch; its size (and labels) set the fakes'. A relativistic loss compares the
        fakes' logits with its logits; feature matching compares discriminator features with it."""
        fake = self.generator(self.generator.noise(real.size(0), device=real.device), labels)
        with self._frozen_discriminator or frozen(self.discriminator_parameters):
            fake_out = self.discriminate(fake, labels)
            real_out = None
            if self.loss.generator_needs_real or self.feature_matching_weight > 0:
                with torch.no_grad():  # D's view of the reals does not depend on G
                    real_out = self.discriminate(real, labels)
            compared_with = {"real_logits": real_out.logits} if self.loss.generator_needs_real else {}
            terms = self.loss.generator_loss(fake_out.logits, **compared_with)
            if self._check_next_generator_step:
                check_terms(terms, f"loss._target_={class_path(self.loss)}", generator_method(self.loss),
                            needs_gradient=self.adversarial_generator_loss)
                self._check_next_generator_step = False
            if not self.adversarial_generator_loss:
                terms = {"adversarial": terms["loss"].detach(), "loss": torch.zeros_like(terms["loss"])}
            if self.feature_matching_weight > 0:
                layer = self.feature_matching_layer
                terms["feature_matching"] = feature_matching_loss(real_out.features[layer], fake_out.features[layer])
                terms["loss"] = terms["loss"] + self.feature_matching_weight * terms["feature_matching"]
            if fake_out.class_logits is not None:
                terms["class_loss"] = auxiliary_classification_loss(fake_out.class_logits, labels)
                terms["loss"] = terms["loss"] + self.auxiliary_weight * terms["class_loss"]
            optimizer.zero_grad(set_to_none=True)
            self.backward_pass(terms["loss"])
        self.step_optimizer(optimizer)
        self.generator_steps += 1
        return terms

    @property
    def discriminator_parameters(self) -> list[nn.Parameter]:
        """D's parameters: the list taken when training started, or a fresh one outside a fit."""
        cached = self._discriminator_parameters
        return cached if cached is not None else list(self.discriminator.parameters())

    def on_train_start(self) -> None:
        self._iteration_observers = [c for c in self.trainer.callbacks if callable(getattr(c, GAN_CALLBACK_HOOKS[0], None))]
        self._discriminator_parameters = list(self.discriminator.parameters())
        self._frozen_discriminator = frozen(self._discriminator_parameters)
        self._plain_backward = lightning_backward_is_plain(self.trainer, self)
        self._step_hook_callbacks = None
        if lightning_step_is_plain(self.trainer, self):
            self._step_hook_callbacks = [callback for callback in self.trainer.callbacks
                                         if _overrides(callback, pl.Callback, "on_before_optimizer_step")]

    def on_train_end(self) -> None:
        self._step_hook_callbacks = None  # outside a fit loop there is no step counter to advance
        self._iteration_observers = []
        self._discriminator_parameters = None
        self._frozen_discriminator = None

    def backward_pass(self, loss: Tensor, inputs: list[Tensor] | None = None) -> None:
        """``loss.backward()`` where Lightning's ``manual_backward`` would add nothing but its own cost (about
        0.1 ms a call: one device, 32-bit, no backward hooks); ``manual_backward`` everywhere else (DDP's
        reducer, mixed precision's loss scaling, callbacks' backward hooks). ``inputs``: the only tensors to
        accumulate gradients into (``Tensor.backward``'s argument; None: every leaf)."""
        extra = {} if inputs is None else {"inputs": inputs}
        if self._plain_backward:
            loss.backward(**extra)
        else:
            self.manual_backward(loss, **extra)

    def step_optimizer(self, optimizer) -> None:
        """``optimizer.step()``. Where Lightning's ``LightningOptimizer.step()`` would only call the callbacks'
        ``on_before_optimizer_step`` hooks and count the step (see ``lightning_step_is_plain``), ``training_step``
        passes the raw optimizer and this does exactly that directly: the wrapper's strategy, precision-plugin and
        closure layers and its per-callback profiler names cost 0.05-0.1 ms a step on a 2-core CPU
        (benchmarks/overhead.py, README "Speed"), a few percent of a tiny network's iteration. A
        LightningOptimizer steps through Lightning's wrapper, which counts the step itself."""
        callbacks = self._step_hook_callbacks
        if callbacks is None or isinstance(optimizer, LightningOptimizer):
            optimizer.step()
            return
        progress = self._trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
        progress.increment_ready()
        if callbacks:
            previous, self._current_fx_name = self._current_fx_name, "on_before_optimizer_step"  # as Lightning does
            for callback in callbacks:
                callback.on_before_optimizer_step(self._trainer, self, optimizer)
            self._current_fx_name = previous
        optimizer.step()
        progress.increment_completed()

    def update_ema(self) -> None:
        if self.generator_ema is not None and self.generator_steps >= self.ema_start:
            with torch.no_grad():  # entered only here: a run without EMA pays nothing per step
                self.generator_ema.update(self.generator)

    # -------------------------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["gan_counters"] = {"generator_steps": self.generator_steps, "discriminator_steps": self.discriminator_steps}
        if self.generator_ema is not None and self.generator_ema.has_average:
            # whether the EMA copy's batch-norm statistics and spectral norms were recomputed for its weights since
            # its last update: then a loaded copy is used as saved, the generator the run scored and drew (recomputed
            # again from the saved vectors, spectral norm's power iteration moved on: 1.2 FID off, an audit)
            checkpoint["ema_statistics_fresh"] = not self.generator_ema.statistics_stale
        # floating-point sums split across threads add in another order: a resume on another count is not exact
        checkpoint["cpu_threads"] = torch.get_num_threads()
        if self.run_config is not None:
            checkpoint["run_config"] = self.run_config
        if self.provenance is not None:  # which code, libraries and machine trained each piece of the run
            checkpoint["provenance"] = self.provenance

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        counters = checkpoint.get("gan_counters", {})
        self.generator_steps = int(counters.get("generator_steps", 0))
        self.discriminator_steps = int(counters.get("discriminator_steps", 0))
        self._take_changed_optimizer_options(checkpoint)
        self._warn_of_another_thread_count(checkpoint)

    def _warn_of_another_thread_count(self, checkpoint: dict[str, Any]) -> None:
        """A run resumed on the CPU with another thread count than it trained with goes on correctly but not bit for
        bit as it would have: sums split across threads add in another order (an audit measured 42 of r3gan's tensors
        differing after 20 steps on 1 thread against 2). Judged here, inside ``fit``: Lightning's DDP launch sets each
        process's count (cores / processes) after ``train.train`` could read it, so every CPU DDP resume was warned
        of a change that did not happen (an audit)."""
        saved, trainer = checkpoint.get("cpu_threads"), self._trainer
        if saved is None or trainer is None or trainer.strategy.root_device.type != "cpu" or not trainer.is_global_zero:
            return
        now = torch.get_num_threads()
        if int(saved) != now:
            # under DDP Lightning sets each process's count from OMP_NUM_THREADS (else cores / processes)
            way = f"OMP_NUM_THREADS={int(saved)}" if trainer.world_size > 1 else f"cpu_threads={int(saved)}"
            log.warning("%s trained on %d CPU threads, this run has %d: sums split across threads add in another order, "
                        "so it will not be bit-identical to an uninterrupted run; %s resumes it exactly",
                        trainer.ckpt_path, int(saved), now, way)

    def _take_changed_optimizer_options(self, checkpoint: dict[str, Any]) -> None:
        """A resumed run whose config changes an optimizer's option (``optimizer.generator.lr=...``, betas) trains with
        the new value, as its warning says: Lightning restores the optimizers' param groups from the checkpoint
        after this hook, so the changed values are written into the checkpoint's copy of them here. Options the
        config did not change keep the checkpoint's values (a schedule's current learning rate among them), so an
        unchanged resume stays exact."""
        states = checkpoint.get("optimizer_states") or []
        saved = ((checkpoint.get("run_config") or {}).get("optimizer") or {})
        now = ((self.run_config or {}).get("optimizer") or {})
        unset = object()
        for state, network in zip(states, ("generator", "discriminator")):  # configure_optimizers' order
            then, current = saved.get(network) or {}, now.get(network) or {}
            changed = {key: value for key, value in current.items()
                       if not key.startswith("_") and then.get(key, unset) != value}
            for group in state.get("param_groups", []):
                for key, value in changed.items():
                    if key in group:  # torch keeps betas as a tuple; the config has a list
                        group[key] = tuple(value) if isinstance(group[key], tuple) and isinstance(value, list) else value
