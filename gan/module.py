"""GANModule: one LightningModule for every GAN variant.

It orchestrates the alternating phases with manual optimization and holds no loss math: the adversarial
loss, the optional discriminator penalty and weight clipping are injected (picked by config).

Units: ``discriminator_steps`` and ``generator_steps`` count optimizer updates of each network. Lightning's
``trainer.global_step`` counts BOTH (one D step + one G step = 2), so schedules here use generator steps.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from gan.losses.adversarial import AdversarialLoss
from gan.losses.penalties import clip_weights
from gan.losses.tricks import InstanceNoise, LabelTargets, auxiliary_classification_loss, feature_matching_loss
from gan.nets.base import Discriminator, DiscriminatorOutput, Generator, eval_mode

OptimizerFactory = Callable[..., torch.optim.Optimizer]


class GANModule(pl.LightningModule):
    """Alternating GAN training.

    Args:
        generator, discriminator: the two networks.
        loss: an :class:`AdversarialLoss` (both objectives on logits).
        optimizer: ``{"generator": factory, "discriminator": factory}``; each factory takes ``params=``
            (Hydra ``_partial_: true`` optimizer configs).
        n_critic: discriminator updates per iteration (each on a fresh real batch).
        n_generator: generator updates per iteration, after the ``n_critic`` discriminator updates (each with
            fresh noise).
        penalty: optional callable ``(discriminator, real, fake) -> {"loss": ..., <terms>}`` added to the
            discriminator loss before its single backward (gradient penalty).
        weight_clip: clamp every discriminator parameter to [-c, c] after each D update (WGAN).
        ema_decay: keep an exponential moving average of the generator (used for samples and metrics).
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

    Conditional networks (``num_classes`` set) are trained on the batch's labels: the fakes of a step are
    generated for the labels of that step's real batch, so both phases see the data's class balance.
    """

    def __init__(
        self,
        generator: Generator,
        discriminator: Discriminator,
        loss: AdversarialLoss,
        optimizer: Mapping[str, OptimizerFactory],
        n_critic: int = 1,
        n_generator: int = 1,
        penalty: Callable[..., dict[str, Tensor]] | None = None,
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
    ):
        super().__init__()
        for name, value in (("n_critic", n_critic), ("n_generator", n_generator)):
            if int(value) < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if set(optimizer) != {"generator", "discriminator"}:
            raise ValueError(f"optimizer config needs exactly 'generator' and 'discriminator', got {sorted(optimizer)}")
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator
        self.loss = loss
        self.penalty = penalty
        self.optimizer_factories = dict(optimizer)
        self.n_critic = int(n_critic)
        self.n_generator = int(n_generator)
        self.weight_clip = weight_clip
        self.ema_start = int(ema_start)
        self.generator_ema: AveragedModel | None = None
        if ema_decay is not None:
            self.generator_ema = AveragedModel(generator, multi_avg_fn=get_ema_multi_avg_fn(float(ema_decay)), use_buffers=True)
            self.generator_ema.requires_grad_(False)
        noise = torch.randn(num_fixed_samples, generator.latent_dim, generator=torch.Generator().manual_seed(fixed_noise_seed))
        self.register_buffer("fixed_noise", noise)
        self.label_targets = LabelTargets(real_label, real_label_range, label_flip_prob)
        if self.label_targets.active and not getattr(loss, "has_targets", False):
            raise ValueError(f"label smoothing / noisy / flipped labels need a loss with real and fake targets, but "
                             f"{type(loss).__name__} has none; use loss=non_saturating, minimax or least_squares")
        self.instance_noise = InstanceNoise(instance_noise_std, instance_noise_steps, instance_noise_schedule)
        blocks = len(discriminator.blocks)
        if not -blocks <= int(feature_matching_layer) < blocks:
            raise ValueError(f"feature_matching_layer={feature_matching_layer} is out of range for a discriminator "
                             f"with {blocks} blocks (expected -{blocks} .. {blocks - 1})")
        if not adversarial_generator_loss and float(feature_matching_weight) <= 0:
            raise ValueError("adversarial_generator_loss=false leaves the generator no objective: set feature_matching_weight > 0")
        self.feature_matching_weight, self.feature_matching_layer = float(feature_matching_weight), int(feature_matching_layer)
        self.adversarial_generator_loss = bool(adversarial_generator_loss)
        self.auxiliary_weight = float(auxiliary_weight)
        if generator.num_classes != discriminator.num_classes:
            raise ValueError(f"the generator is built for num_classes={generator.num_classes} but the discriminator "
                             f"for num_classes={discriminator.num_classes}")
        self.generator_steps = 0
        self.discriminator_steps = 0
        #: the resolved run configuration, stored in every checkpoint so a generator can be rebuilt from it
        self.run_config: dict[str, Any] | None = None

    # ----------------------------------------------------------------------------------------- sampling
    @property
    def sampling_generator(self) -> Generator:
        """The generator to show and score: the EMA copy when EMA is on."""
        return self.generator_ema.module if self.generator_ema is not None else self.generator

    @property
    def num_classes(self) -> int | None:
        return self.generator.num_classes

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
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if self.num_classes is None or datamodule is None:
            return
        data_classes = getattr(datamodule, "num_classes", None)
        if data_classes != self.num_classes:
            name = getattr(datamodule, "name", type(datamodule).__name__)
            raise ValueError(f"a conditional model needs labelled data with {self.num_classes} classes, but data {name} "
                             f"has num_classes={data_classes}; use labelled data (e.g. data=digits) or an unconditional model")

    def with_instance_noise(self, x: Tensor) -> Tensor:
        """Instance noise scheduled by the generator step (checkpointed), so a resumed run continues exactly."""
        return self.instance_noise(x, self.generator_steps)

    def discriminate(self, x: Tensor, labels: Tensor | None) -> DiscriminatorOutput:
        """The discriminator, given labels only when its logit depends on them (not for AC-GAN)."""
        return self.discriminator.evaluate(x, self._d_labels(labels))

    def _d_labels(self, labels: Tensor | None) -> Tensor | None:
        return labels if self.discriminator.takes_labels else None

    # ----------------------------------------------------------------------------------------- training
    def configure_optimizers(self):
        opt_g = self.optimizer_factories["generator"](params=self.generator.parameters())
        opt_d = self.optimizer_factories["discriminator"](params=self.discriminator.parameters())
        return [opt_g, opt_d]

    def training_step(self, batch, batch_idx: int) -> None:
        real, labels = (batch[0], batch[1]) if isinstance(batch, (tuple, list)) else (batch, None)
        labels = labels if self.num_classes is not None else None
        opt_g, opt_d = self.optimizers()
        self._log_terms("train/d", self.discriminator_step(real, opt_d, labels))
        if self.discriminator_steps % self.n_critic == 0:
            for _ in range(self.n_generator):
                self._log_terms("train/g", self.generator_step(real, opt_g, labels))
                self.update_ema()

    def discriminator_step(self, real: Tensor, optimizer, labels: Tensor | None = None) -> dict[str, Tensor]:
        self.toggle_optimizer(optimizer)
        with torch.no_grad():
            fake = self.generator(self.generator.noise(real.size(0)), labels)
        real, fake = self.with_instance_noise(real), self.with_instance_noise(fake)
        real_out, fake_out = self.discriminate(real, labels), self.discriminate(fake, labels)
        targets = self.label_targets(real.size(0), real.device) if self.label_targets.active else {}
        terms = self.loss.discriminator_loss(real_out.logits, fake_out.logits, **targets)
        total = terms["loss"]
        if real_out.class_logits is not None:
            terms["class_loss"] = (auxiliary_classification_loss(real_out.class_logits, labels)
                                   + auxiliary_classification_loss(fake_out.class_logits, labels))
            terms["class_accuracy"] = (real_out.class_logits.argmax(dim=1) == labels).float().mean()
            total = total + self.auxiliary_weight * terms["class_loss"]
        if self.penalty is not None and self.discriminator_steps % getattr(self.penalty, "interval", 1) == 0:
            d_labels = self._d_labels(labels)
            critic = self.discriminator if d_labels is None else (lambda x: self.discriminator(x, d_labels))
            penalty_terms = self.penalty(critic, real, fake)
            total = total + penalty_terms.pop("loss")
            terms.update(penalty_terms)
        terms["loss"] = total
        terms["real_score"] = self.loss.score(real_out.logits)
        terms["fake_score"] = self.loss.score(fake_out.logits)
        if self.instance_noise.start > 0:
            terms["instance_noise_std"] = torch.tensor(self.instance_noise.std(self.generator_steps), device=real.device)
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(total)
        optimizer.step()
        self.untoggle_optimizer(optimizer)
        if self.weight_clip is not None:
            clip_weights(self.discriminator, float(self.weight_clip))
        self.discriminator_steps += 1
        return terms

    def generator_step(self, real: Tensor, optimizer, labels: Tensor | None = None) -> dict[str, Tensor]:
        """``real`` is the step's real batch: its size (and labels) set the fakes'; feature matching compares
        against its discriminator features."""
        self.toggle_optimizer(optimizer)
        fake = self.generator(self.generator.noise(real.size(0)), labels)
        fake_out = self.discriminate(self.with_instance_noise(fake), labels)
        terms = self.loss.generator_loss(fake_out.logits)
        if not self.adversarial_generator_loss:
            terms = {"adversarial": terms["loss"].detach(), "loss": torch.zeros_like(terms["loss"])}
        if self.feature_matching_weight > 0:
            with torch.no_grad():
                real_features = self.discriminate(self.with_instance_noise(real), labels).features[self.feature_matching_layer]
            terms["feature_matching"] = feature_matching_loss(real_features, fake_out.features[self.feature_matching_layer])
            terms["loss"] = terms["loss"] + self.feature_matching_weight * terms["feature_matching"]
        if fake_out.class_logits is not None:
            terms["class_loss"] = auxiliary_classification_loss(fake_out.class_logits, labels)
            terms["loss"] = terms["loss"] + self.auxiliary_weight * terms["class_loss"]
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(terms["loss"])
        optimizer.step()
        self.untoggle_optimizer(optimizer)
        self.generator_steps += 1
        return terms

    @torch.no_grad()
    def update_ema(self) -> None:
        if self.generator_ema is not None and self.generator_steps >= self.ema_start:
            self.generator_ema.update_parameters(self.generator)

    def _log_terms(self, prefix: str, terms: Mapping[str, Tensor]) -> None:
        self.log_dict({f"{prefix}/{name}": value.detach() for name, value in terms.items()}, on_step=True, on_epoch=False)

    # -------------------------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["gan_counters"] = {"generator_steps": self.generator_steps, "discriminator_steps": self.discriminator_steps}
        if self.run_config is not None:
            checkpoint["run_config"] = self.run_config

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        counters = checkpoint.get("gan_counters", {})
        self.generator_steps = int(counters.get("generator_steps", 0))
        self.discriminator_steps = int(counters.get("discriminator_steps", 0))
