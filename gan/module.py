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
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from gan.losses.adversarial import AdversarialLoss
from gan.losses.penalties import clip_weights
from gan.nets.base import Discriminator, Generator

OptimizerFactory = Callable[..., torch.optim.Optimizer]


class GANModule(pl.LightningModule):
    """Alternating GAN training.

    Args:
        generator, discriminator: the two networks.
        loss: an :class:`AdversarialLoss` (both objectives on logits).
        optimizer: ``{"generator": factory, "discriminator": factory}``; each factory takes ``params=``
            (Hydra ``_partial_: true`` optimizer configs).
        n_critic: discriminator updates per generator update (each on a fresh real batch).
        penalty: optional callable ``(discriminator, real, fake) -> {"loss": ..., <terms>}`` added to the
            discriminator loss before its single backward (gradient penalty).
        weight_clip: clamp every discriminator parameter to [-c, c] after each D update (WGAN).
        ema_decay: keep an exponential moving average of the generator (used for samples and metrics).
        ema_start: generator step from which the average is updated (its first update copies the weights).
        num_fixed_samples, fixed_noise_seed: the fixed latent codes used for sample grids.
    """

    def __init__(
        self,
        generator: Generator,
        discriminator: Discriminator,
        loss: AdversarialLoss,
        optimizer: Mapping[str, OptimizerFactory],
        n_critic: int = 1,
        penalty: Callable[..., dict[str, Tensor]] | None = None,
        weight_clip: float | None = None,
        ema_decay: float | None = None,
        ema_start: int = 0,
        num_fixed_samples: int = 1024,
        fixed_noise_seed: int = 0,
    ):
        super().__init__()
        if int(n_critic) < 1:
            raise ValueError(f"n_critic must be a positive integer, got {n_critic}")
        if set(optimizer) != {"generator", "discriminator"}:
            raise ValueError(f"optimizer config needs exactly 'generator' and 'discriminator', got {sorted(optimizer)}")
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator
        self.loss = loss
        self.penalty = penalty
        self.optimizer_factories = dict(optimizer)
        self.n_critic = int(n_critic)
        self.weight_clip = weight_clip
        self.ema_start = int(ema_start)
        self.generator_ema: AveragedModel | None = None
        if ema_decay is not None:
            self.generator_ema = AveragedModel(generator, multi_avg_fn=get_ema_multi_avg_fn(float(ema_decay)), use_buffers=True)
            self.generator_ema.requires_grad_(False)
        noise = torch.randn(num_fixed_samples, generator.latent_dim, generator=torch.Generator().manual_seed(fixed_noise_seed))
        self.register_buffer("fixed_noise", noise)
        self.generator_steps = 0
        self.discriminator_steps = 0
        #: the resolved run configuration, stored in every checkpoint so a generator can be rebuilt from it
        self.run_config: dict[str, Any] | None = None

    # ----------------------------------------------------------------------------------------- sampling
    @property
    def sampling_generator(self) -> Generator:
        """The generator to show and score: the EMA copy when EMA is on."""
        return self.generator_ema.module if self.generator_ema is not None else self.generator

    @torch.no_grad()
    def sample_fixed(self, n: int | None = None) -> Tensor:
        """Samples for the first ``n`` fixed latent codes, generator in eval mode."""
        generator = self.sampling_generator
        was_training = generator.training
        generator.eval()
        try:
            return generator(self.fixed_noise[:n])
        finally:
            generator.train(was_training)

    # ----------------------------------------------------------------------------------------- training
    def configure_optimizers(self):
        opt_g = self.optimizer_factories["generator"](params=self.generator.parameters())
        opt_d = self.optimizer_factories["discriminator"](params=self.discriminator.parameters())
        return [opt_g, opt_d]

    def training_step(self, batch, batch_idx: int) -> None:
        real = batch[0] if isinstance(batch, (tuple, list)) else batch
        opt_g, opt_d = self.optimizers()
        self._log_terms("train/d", self.discriminator_step(real, opt_d))
        if self.discriminator_steps % self.n_critic == 0:
            self._log_terms("train/g", self.generator_step(real.size(0), opt_g))
            self.update_ema()

    def discriminator_step(self, real: Tensor, optimizer) -> dict[str, Tensor]:
        self.toggle_optimizer(optimizer)
        with torch.no_grad():
            fake = self.generator(self.generator.noise(real.size(0)))
        real_logits = self.discriminator(real)
        fake_logits = self.discriminator(fake)
        terms = self.loss.discriminator_loss(real_logits, fake_logits)
        total = terms["loss"]
        if self.penalty is not None:
            penalty_terms = self.penalty(self.discriminator, real, fake)
            total = total + penalty_terms.pop("loss")
            terms.update(penalty_terms)
        terms["loss"] = total
        terms["real_score"] = self.loss.score(real_logits)
        terms["fake_score"] = self.loss.score(fake_logits)
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(total)
        optimizer.step()
        self.untoggle_optimizer(optimizer)
        if self.weight_clip is not None:
            clip_weights(self.discriminator, float(self.weight_clip))
        self.discriminator_steps += 1
        return terms

    def generator_step(self, batch_size: int, optimizer) -> dict[str, Tensor]:
        self.toggle_optimizer(optimizer)
        fake_logits = self.discriminator(self.generator(self.generator.noise(batch_size)))
        terms = self.loss.generator_loss(fake_logits)
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
