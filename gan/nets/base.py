"""What every generator and discriminator shares: the sample shape they were built for, checked at the
boundary so a data/model mismatch fails with both shapes named instead of a matmul error deep inside,
and optional class conditioning (``num_classes``), handled here so each architecture only builds layers.
"""
from __future__ import annotations

import numbers
from contextlib import contextmanager
from typing import Callable, Iterator, NamedTuple, Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import _SpectralNorm
from torch.nn.utils.spectral_norm import SpectralNorm as SpectralNormHook

from gan.nets.layers import MinibatchDiscrimination, MinibatchStdDev, append_features, minibatch_layer, one_hot
from gan.utils.errors import ConfigError
from gan.utils.targets import class_path

GENERATOR_CONDITIONING = ("embedding", "batchnorm")
#: layers whose output for one sample depends on the other samples of the batch
BATCH_COUPLED_LAYERS = (nn.modules.batchnorm._BatchNorm, MinibatchStdDev, MinibatchDiscrimination)
DISCRIMINATOR_CONDITIONING = ("projection", "concat", "auxiliary")


def as_shape(shape: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(s) for s in shape)


def check_labels(who: str, num_classes: int | None, labels, n: int, device=None) -> Tensor | None:
    """Labels as a (n,) long tensor in [0, num_classes); a clear error for a missing or stray labelling."""
    if num_classes is None:
        if labels is not None:
            raise ConfigError(f"{who} is unconditional (num_classes=None) but was given labels; use model=cgan or model=acgan")
        return None
    if labels is None:
        raise ConfigError(f"{who} is conditional on {num_classes} classes: pass labels of shape ({n},)")
    try:
        labels = torch.as_tensor(labels, device=device)
    except (TypeError, ValueError, RuntimeError) as error:  # a string, a ragged list: torch's own error was a traceback
        raise ConfigError(f"{who} expects integer class indices as labels, got {labels!r} ({error})") from None
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:  # a dtype, no value read
        # torch.long truncated them: labels=2.7 drew class 2, True class 1, without a word (an audit)
        raise ConfigError(f"{who} expects integer class indices as labels, got {labels.dtype}")
    labels = labels.long()
    if labels.dim() == 0:
        labels = labels.expand(n)
    if labels.shape != (n,):
        raise ConfigError(f"{who} expects labels of shape ({n},), got {tuple(labels.shape)}")
    if n and labels.device.type == "cpu":
        # only where reading them is free: on an accelerator the read would make the host wait for the device at
        # every forward pass (ten a conditional iteration). Training labels there were checked on the host before
        # the transfer (GANDataModule.on_before_batch_transfer); the ones the module draws are in range
        low, high = torch.aminmax(labels)
        if low.item() < 0 or high.item() >= num_classes:
            raise ConfigError(f"{who} expects labels in [0, {num_classes}), got values in [{low.item()}, {high.item()}]")
    return labels


def check_choice(name: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; expected one of {list(choices)}")
    return value


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` in eval mode (BatchNorm running statistics, no dropout) for the block, then as it was."""
    if not any(m.training for m in module.modules()):
        # already in eval mode throughout (an outer block: a metric's batches of samples): switching every
        # submodule twice cost ~30 us a batch, a quarter of a toy run's metric evaluation. It ends as the switch
        # would have: in eval mode throughout, whatever the block did
        try:
            yield module
        finally:
            if any(m.training for m in module.modules()):
                module.eval()
        return
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


class Generator(nn.Module):
    """Maps latent codes of size ``latent_dim`` (and, when conditional, class labels) to samples of
    ``sample_shape``.

    Conditioning (``num_classes`` set): ``embedding`` concatenates a learned label embedding of
    ``embedding_dim`` to z (Mirza & Osindero 2014, Odena et al. 2017); ``batchnorm`` makes every batch norm
    class-conditional (de Vries et al. 2017, Miyato & Koyama 2018). Subclasses build their first layer for
    ``self.input_dim`` inputs and implement ``generate(z, labels)``.
    """

    def __init__(self, latent_dim: int, sample_shape: Sequence[int], num_classes: int | None = None,
                 conditioning: str = "embedding", embedding_dim: int | None = None):
        super().__init__()
        if int(latent_dim) < 1:  # a conditional generator with 0 took its labels alone: one sample per class, silently
            raise ConfigError(f"latent_dim must be a positive integer (the size of the noise z), got {latent_dim}")
        self.latent_dim = int(latent_dim)
        self.sample_shape = as_shape(sample_shape)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.conditioning = None if num_classes is None else check_choice("generator conditioning", conditioning, GENERATOR_CONDITIONING)
        self.input_dim = self.latent_dim
        if self.conditioning == "embedding":
            self.label_embedding = nn.Embedding(self.num_classes, int(embedding_dim or self.num_classes))
            self.input_dim += self.label_embedding.embedding_dim

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        if z.dim() != 2 or z.size(1) != self.latent_dim:
            raise ConfigError(
                f"{type(self).__name__} expects latent codes of shape (N, {self.latent_dim}), got {tuple(z.shape)}"
            )
        labels = check_labels(type(self).__name__, self.num_classes, labels, z.size(0), z.device)
        if self.conditioning == "embedding":
            z = torch.cat([z, self.label_embedding(labels)], dim=1)
        return self.generate(z, labels)

    def generate(self, z: Tensor, labels: Tensor | None) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def noise(self, n: int, generator: torch.Generator | None = None, device=None) -> Tensor:
        """``n`` latent codes; drawn where they are used unless a (CPU) ``generator`` fixes them, since a CPU
        draw and copy would make the host wait for the GPU at every training step."""
        device = device if device is not None else next(self.parameters()).device
        if generator is None:
            return torch.randn(n, self.latent_dim, device=device)
        return torch.randn(n, self.latent_dim, generator=generator).to(device)

    @torch.no_grad()
    def recompute_spectral_norms(self, max_iterations: int = 100, tolerance: float = 1e-6) -> None:
        """Power-iterate every spectral norm on its current weight until its estimate of the largest singular
        value settles (relative change below ``tolerance``), so eval mode, which iterates nothing, divides each
        weight by that value (Miyato et al. 2018). An averaged (EMA) generator needs it: its weights are not the
        ones the stored singular vectors were iterated for. From the raw generator's vectors a few iterations
        suffice. A generator without spectral norm is left as it is."""
        for layer in self.modules():
            if not parametrize.is_parametrized(layer):
                continue
            for parametrizations in layer.parametrizations.values():
                weight = parametrizations.original
                for spectral in (p for p in parametrizations if isinstance(p, _SpectralNorm) and weight.ndim > 1):
                    matrix, previous = spectral._reshape_weight_to_matrix(weight), None
                    for _ in range(max_iterations):
                        spectral._power_method(matrix, 1)
                        sigma = float(torch.vdot(spectral._u, torch.mv(matrix, spectral._v)))
                        if previous is not None and abs(sigma - previous) <= tolerance * abs(sigma):
                            break
                        previous = sigma

    @torch.no_grad()
    def recompute_batch_norm_statistics(self, samples: int = 2048, batch_size: int = 256, seed: int = 0) -> None:
        """Set every batch norm's running statistics to those of the current weights ("standing statistics",
        Brock et al. 2019), over ``samples`` fixed latent codes. An averaged (EMA) generator needs them: its
        weights are not the ones the training-time statistics were tracked for, and in eval mode those wrong
        statistics turn a DCGAN's EMA samples into noise. Deterministic (own RNG, statistics reset first), so
        recomputing after a resume gives the same values. A generator without batch norm is left as it is.
        (``torch.optim.swa_utils.update_bn`` does the same for a loader of inputs, but cannot pass a
        conditional generator its labels.)"""
        norms = [m for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
        if not norms:
            return
        momenta = [norm.momentum for norm in norms]
        was_training = self.training
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative average over the batches below
        self.train()
        rng = torch.Generator().manual_seed(int(seed))
        device = next(self.parameters()).device
        try:
            for start in range(0, samples, batch_size):
                n = min(batch_size, samples - start)
                self(self.noise(n, rng, device), self.random_labels(n, rng, device))
        finally:
            for norm, momentum in zip(norms, momenta):
                norm.momentum = momentum
            self.train(was_training)

    def random_labels(self, n: int, generator: torch.Generator | None = None, device=None) -> Tensor | None:
        """Uniformly drawn classes for a conditional generator, None for an unconditional one."""
        if self.num_classes is None:
            return None
        device = device if device is not None else next(self.parameters()).device
        return torch.randint(self.num_classes, (n,), generator=generator).to(device)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, labels=None) -> Tensor:
        """``n`` samples in the data's value range ([-1, 1] for images), in eval mode.

        Conditional generators take ``labels`` (a class index, or a sequence of ``n``); without them the
        classes are drawn uniformly.
        """
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:  # torch's reshape or randn errors
            raise ConfigError(f"sample(n): n is the number of samples, a positive integer; got {n!r}")
        with eval_mode(self):
            z = self.noise(int(n), generator)
            if labels is None:
                labels = self.random_labels(n, generator, z.device)
            return self(z, labels)


class RowsOf(Sequence[Tensor]):
    """The rows ``start:stop`` of each of ``tensors``, sliced when an item is read (a list of the slices in
    every other respect): a pass over two batches at once hands each batch its share of every block's
    features without slicing the ones nobody reads."""

    def __init__(self, tensors: Sequence[Tensor], start: int, stop: int | None):
        self.tensors, self.rows = tensors, slice(start, stop)

    def __len__(self) -> int:
        return len(self.tensors)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [tensor[self.rows] for tensor in self.tensors[index]]
        return self.tensors[index][self.rows]


class DiscriminatorOutput(NamedTuple):
    logits: Tensor  # (N,) the adversarial logit
    class_logits: Tensor | None  # (N, num_classes) for an auxiliary classifier (AC-GAN), else None
    features: Sequence[Tensor]  # the output of every block, for feature matching


class Discriminator(nn.Module):
    """Maps samples of ``sample_shape`` to one logit each, shape (N,).

    Subclasses fill ``self.blocks`` (a ModuleList; their outputs are the features ``evaluate`` returns),
    optionally ``self.minibatch`` (a minibatch layer after the last block), and ``self.head`` (to one logit),
    then call ``build_conditioning`` with the head's input size. Conditioning (``num_classes`` set):
    ``projection`` adds <embed(y), phi(x)> to the logit (Miyato & Koyama 2018); ``concat`` appends one-hot
    labels to the input (as channels for images: ``self.input_extra`` more input channels/features);
    ``auxiliary`` adds a classifier head (AC-GAN, Odena et al. 2017) and ignores labels in the logit.
    """

    #: image networks receive concatenated labels as extra channels, vector networks as extra entries
    labels_as_channels = True

    def __init__(self, sample_shape: Sequence[int], num_classes: int | None = None, conditioning: str = "projection"):
        super().__init__()
        self.sample_shape = as_shape(sample_shape)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.conditioning = None if num_classes is None else check_choice("discriminator conditioning", conditioning, DISCRIMINATOR_CONDITIONING)
        self.input_extra = self.num_classes if self.conditioning == "concat" else 0
        self.minibatch: nn.Module | None = None
        self.projection: nn.Module | None = None
        self.classifier: nn.Module | None = None

    @property
    def takes_labels(self) -> bool:
        """Whether the logit depends on labels (an auxiliary classifier predicts them instead)."""
        return self.conditioning in ("projection", "concat")

    @property
    def samples_independent(self) -> bool:
        """Whether a training-mode pass treats every sample on its own and changes no state: no batch
        statistics (batch norm, minibatch layers) and no parametrization or pre-forward hook (spectral norm
        advances its power iteration in them at every pass). Then one pass over real and fake samples together
        gives the logits two passes give (``GANModule.discriminate_real_and_fake``). Conservative: any
        parametrization counts as state."""
        for module in self.modules():
            if isinstance(module, BATCH_COUPLED_LAYERS) or nn.utils.parametrize.is_parametrized(module):
                return False
            if module._forward_pre_hooks:  # torch.nn.utils.spectral_norm (the hook-based version)
                return False
        return True

    def build_conditioning(self, head_inputs: int, spectral_norm: bool = False) -> None:
        if self.conditioning == "projection":
            embedding = nn.Embedding(self.num_classes, head_inputs)
            nn.init.xavier_uniform_(embedding.weight)
            self.projection = maybe_spectral_norm(embedding, spectral_norm)
        elif self.conditioning == "auxiliary":
            self.classifier = maybe_spectral_norm(nn.Linear(head_inputs, self.num_classes), spectral_norm)

    def build_vector_head(self, features: int, head: Callable[[int], nn.Module], minibatch: str | None = "none",
                          minibatch_group_size: int = 4, minibatch_kernels: int = 32, minibatch_kernel_dim: int = 8,
                          spectral_norm: bool = False) -> None:
        """For blocks that end in (N, ``features``) vectors: the ``minibatch`` layer, ``head(inputs)`` (the map to
        one logit) and the conditioning, both sized for the minibatch layer's extra features."""
        self.minibatch = minibatch_layer(minibatch, (features,), minibatch_group_size, minibatch_kernels, minibatch_kernel_dim)
        inputs = features + (self.minibatch.extra_features if self.minibatch is not None else 0)
        self.head = head(inputs)
        self.build_conditioning(inputs, spectral_norm)

    def evaluate(self, x: Tensor, labels: Tensor | None = None) -> DiscriminatorOutput:
        """One pass giving the logit, the auxiliary class logits and every block's features."""
        if tuple(x.shape[1:]) != self.sample_shape:
            raise ConfigError(
                f"{type(self).__name__} was built for samples of shape {self.sample_shape} "
                f"but got {tuple(x.shape[1:])}: set the model's data shape to match the data"
            )
        label_count = self.num_classes if self.takes_labels else None
        labels = check_labels(type(self).__name__, label_count, labels, x.size(0), x.device)
        h = x
        if self.conditioning == "concat":
            h = append_features(x if self.labels_as_channels else x.flatten(1), one_hot(labels, self.num_classes, x.dtype))
        features = []
        for block in self.blocks:
            h = block(h)
            features.append(h)
        if self.minibatch is not None:
            h = self.minibatch(h)
        outputs = self.head(h)
        try:
            logits = outputs.reshape(x.size(0))
        except RuntimeError:  # a head of two outputs: "shape '[200]' is invalid for input of size 400" (an audit)
            raise ConfigError(f"model.discriminator._target_={class_path(self)}: its head gave outputs of shape "
                              f"{tuple(outputs.shape)} for {x.size(0)} samples; expected one logit per sample, shape "
                              f"({x.size(0)},) or ({x.size(0)}, 1) (e.g. a head nn.Linear(features, 1))") from None
        if self.projection is not None:
            logits = logits + (self.projection(labels) * h.flatten(1)).sum(dim=1)
        class_logits = self.classifier(h.flatten(1)) if self.classifier is not None else None
        return DiscriminatorOutput(logits, class_logits, features)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.evaluate(x, labels).logits


def _defines(obj: object, base: type, method: str) -> bool:
    return getattr(type(obj), method) is not getattr(base, method)


def check_generator_class(generator: Generator) -> None:
    """A generator of one's own that defines neither ``generate`` (what ``Generator.forward`` calls) nor ``forward``.
    Static."""
    if not (_defines(generator, Generator, "generate") or _defines(generator, Generator, "forward")):
        raise ConfigError(f"model.generator._target_={class_path(generator)} defines no generate(z, labels): a generator "
                          "of one's own subclasses gan.nets.Generator and defines generate(z, labels), returning samples "
                          "of shape (N, *self.sample_shape)")


def check_discriminator_class(discriminator: Discriminator, feature_matching: bool) -> None:
    """A discriminator of one's own that ``Discriminator.evaluate`` (what the module calls) cannot run: no ``blocks`` or
    no ``head`` (an audit: ``AttributeError: 'NoBlocksD' object has no attribute 'blocks'`` from inside Hydra). One that
    defines its own ``evaluate`` needs ``blocks`` only for feature matching. Static."""
    name = f"model.discriminator._target_={class_path(discriminator)}"
    missing = [attribute for attribute in ("blocks", "head") if not hasattr(discriminator, attribute)]
    if _defines(discriminator, Discriminator, "evaluate"):
        if feature_matching and "blocks" in missing:
            raise ConfigError(f"{name} has no self.blocks, whose outputs feature matching compares "
                              "(model.feature_matching_weight > 0): set self.blocks, an nn.ModuleList, or "
                              "model.feature_matching_weight=0")
        return
    if missing:
        forward = (" (it defines forward, which the module does not call: it calls evaluate)"
                   if _defines(discriminator, Discriminator, "forward") else "")
        raise ConfigError(f"{name} has no self.{' nor self.'.join(missing)}{forward}: a discriminator of one's own "
                          "subclasses gan.nets.Discriminator and sets self.blocks (an nn.ModuleList; its outputs are the "
                          "features) and self.head (the last block's output to one logit per sample), or defines "
                          "evaluate(x, labels) returning a DiscriminatorOutput")


def check_generated(generator: nn.Module, fake: object, real: Tensor) -> None:
    """The generator's output against the real batch it is to be judged with, before the two meet (the module calls it
    on its first discriminator step): a generator of one's own returning (N, 1) for 2-D points failed in torch.cat, or
    with a batch-norm discriminator as the discriminator's shape error (an audit); samples on another device, or in
    float64 or an integer type, failed inside the discriminator's first layer. Reads shapes, devices and dtypes only
    (bf16 samples beside float32 reals are mixed precision's autocast, not a mistake)."""
    if isinstance(fake, Tensor) and fake.shape == real.shape:
        name = f"model.generator._target_={class_path(generator)}"
        if fake.device != real.device:
            raise ConfigError(f"{name} generated samples on {fake.device}, but the real batch is on {real.device}; "
                              "expected samples on the generator's device (tensors it creates need device=z.device)")
        if not fake.is_floating_point() or (fake.dtype == torch.float64 and real.dtype != torch.float64):
            raise ConfigError(f"{name} generated {str(fake.dtype).removeprefix('torch.')} samples, but the real batch "
                              f"is {str(real.dtype).removeprefix('torch.')}; expected samples of the real batch's dtype "
                              "(no .double() or integer tensors in generate)")
        return
    n, shape = real.size(0), tuple(real.shape[1:])
    got = f"samples of shape {tuple(fake.shape)}" if isinstance(fake, Tensor) else f"a {type(fake).__name__}"
    expected = f"({n}, {', '.join(map(str, shape))})"
    raise ConfigError(f"model.generator._target_={class_path(generator)} generated {got} for a batch of {n} real samples "
                      f"of shape {shape}; expected {expected}, N samples of the data's shape (e.g. reshape with "
                      f"x.view(-1, *self.sample_shape); its sample_shape is {getattr(generator, 'sample_shape', None)})")


def check_discriminator_output(discriminator: nn.Module, output: object, n: int) -> None:
    """D's output for ``n`` samples: a :class:`DiscriminatorOutput` whose logits are (n,), one per sample (the module
    calls it on its first discriminator step; ``evaluate`` of one's own may return anything). Reads shapes only."""
    name = f"model.discriminator._target_={class_path(discriminator)}"
    if not isinstance(output, DiscriminatorOutput):
        raise ConfigError(f"{name}: evaluate(x, labels) returned a {type(output).__name__}; expected a "
                          "gan.nets.DiscriminatorOutput(logits, class_logits, features)")
    logits = output.logits
    if not isinstance(logits, Tensor) or logits.shape != (n,):
        got = f"of shape {tuple(logits.shape)}" if isinstance(logits, Tensor) else f"as a {type(logits).__name__}"
        raise ConfigError(f"{name}: evaluate(x, labels) returned logits {got} for {n} samples; expected one logit per "
                          f"sample, shape ({n},)")


def output_activation(name: str) -> nn.Module:
    """``tanh`` for data scaled to [-1, 1] (images), ``identity`` for unbounded data (2D toys)."""
    choices = {"tanh": nn.Tanh, "identity": nn.Identity, "sigmoid": nn.Sigmoid}
    if name not in choices:
        raise ConfigError(f"unknown output activation {name!r}; expected one of {sorted(choices)}")
    return choices[name]()


def has_spectral_norm(module: nn.Module) -> bool:
    """Whether any layer of ``module`` has spectral norm, in either of torch's forms: the parametrization (what
    :func:`maybe_spectral_norm` builds, and ``recompute_spectral_norms`` iterates) or the older forward pre-hook (a
    network of your own may use it). A parametrization is a submodule of its layer, so ``modules()`` reaches it, as
    in :class:`gan.ema.EMA`."""
    return any(isinstance(layer, _SpectralNorm)
               or any(isinstance(hook, SpectralNormHook) for hook in layer._forward_pre_hooks.values())
               for layer in module.modules())


def maybe_spectral_norm(layer: nn.Module, enabled: bool) -> nn.Module:
    """Miyato et al. 2018: divide the weight by its largest singular value (one power iteration a step)."""
    return nn.utils.parametrizations.spectral_norm(layer) if enabled else layer


def check_negative_slope(negative_slope: float, name: str = "negative_slope") -> float:
    """A leaky ReLU's slope for negative inputs: >= 0 (0 is ReLU). A negative one, an activation that is not
    monotone, is refused: no GAN uses one, the MLP generator silently took it as ReLU, and the DCGAN
    discriminator's in-place LeakyReLU fails at its first backward with a traceback."""
    if not float(negative_slope) >= 0.0:
        raise ConfigError(f"{name} must be >= 0 (0 is ReLU), got {negative_slope}")
    return float(negative_slope)


def maybe_dropout(p: float) -> list[nn.Module]:
    """A dropout layer when ``p`` > 0 (Goodfellow et al. 2014 used it in the discriminator)."""
    if not 0.0 <= float(p) < 1.0:
        raise ConfigError(f"dropout must be in [0, 1), got {p}")
    return [nn.Dropout(float(p))] if p > 0 else []
