"""Conditional GANs: labels reach both networks, projection adds its term, unlabelled data is a clear
error, grids have a row per class, and after a short training the samples follow the requested classes."""
import re
from functools import partial

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import TensorDataset

import gan
from gan.data.base import GANDataModule
from gan.nets.base import check_labels
from gan.utils.errors import DataError
from gan.data.toy2d import ring_modes, sample_mixture
from gan.losses import HingeLoss, NonSaturatingLoss
from gan.module import GANModule
from gan.nets import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator
from tests.conftest import tiny_overrides
from tests.data.fake_datasets import LABELLED_PAST_THEIR_CLASSES
from tests.test_module import attach_trainer
from train import train

SHAPE = (1, 16, 16)


@pytest.mark.parametrize("conditioning", ["embedding", "batchnorm"])
def test_labels_reach_the_generator(conditioning):
    torch.manual_seed(0)
    g = DCGANGenerator(8, SHAPE, width=4, num_classes=3, conditioning=conditioning)
    if conditioning == "batchnorm":  # identity-initialized: give the classes different scales
        torch.nn.init.normal_(g.net[1].scale.weight, 1.0, 0.5)
    g.eval()
    z = torch.randn(4, 8)
    assert not torch.allclose(g(z, torch.zeros(4, dtype=torch.long)), g(z, torch.full((4,), 2)))


@pytest.mark.parametrize("conditioning", ["projection", "concat"])
@pytest.mark.parametrize("net", ["dcgan", "mlp", "dcgan_vector"])
def test_labels_reach_the_discriminator(conditioning, net):
    torch.manual_seed(0)
    shape = (2,) if net != "dcgan" else SHAPE
    d = {"dcgan": partial(DCGANDiscriminator, width=4), "dcgan_vector": partial(DCGANDiscriminator, width=2),
         "mlp": partial(MLPDiscriminator, hidden=[8], dropout=0.0, input_dropout=0.0)}[net](shape, num_classes=3, conditioning=conditioning)
    x = torch.randn(4, *shape)
    assert not torch.allclose(d(x, torch.zeros(4, dtype=torch.long)), d(x, torch.full((4,), 2)))


def test_projection_adds_the_inner_product_of_the_class_embedding_and_the_features():
    torch.manual_seed(0)
    d = DCGANDiscriminator(SHAPE, width=4, norm="none", num_classes=3, conditioning="projection")
    x, labels = torch.randn(5, *SHAPE), torch.tensor([0, 1, 2, 1, 0])
    out = d.evaluate(x, labels)
    phi = out.features[-1]
    unconditional = d.head(phi).reshape(5)
    expected = unconditional + (d.projection.weight[labels] * phi.flatten(1)).sum(dim=1)
    assert torch.allclose(out.logits, expected, atol=1e-6)
    assert (out.logits - unconditional).abs().min() > 0  # the projection term changes every logit
    with torch.no_grad():
        d.projection.weight.zero_()
    assert torch.allclose(d(x, labels), unconditional, atol=1e-6)


def test_auxiliary_classifier_predicts_classes_and_ignores_them_in_the_logit():
    d = DCGANDiscriminator(SHAPE, width=4, num_classes=3, conditioning="auxiliary")
    d.eval()
    out = d.evaluate(torch.randn(4, *SHAPE))
    assert out.class_logits.shape == (4, 3)
    assert not d.takes_labels


@pytest.mark.parametrize("weight", [0.0, 5.0])
def test_the_auxiliary_weight_scales_the_class_loss_in_both_steps(weight):
    """AC-GAN's total = adversarial + auxiliary_weight * class cross-entropy, in the D and the G step (a mutation that
    dropped the weight from the D step survived: no test trained with a weight other than 1)."""
    def module_with(auxiliary_weight):
        torch.manual_seed(0)
        return GANModule(generator=DCGANGenerator(8, SHAPE, width=4, num_classes=3),
                         discriminator=DCGANDiscriminator(SHAPE, width=4, num_classes=3, conditioning="auxiliary"),
                         loss=NonSaturatingLoss(), auxiliary_weight=auxiliary_weight, num_fixed_samples=3,
                         optimizer={"generator": partial(torch.optim.SGD, lr=0.0), "discriminator": partial(torch.optim.SGD, lr=0.0)})

    real, labels = torch.randn(6, *SHAPE), torch.tensor([0, 1, 2, 2, 1, 0])
    weighted, unweighted = module_with(weight), module_with(1.0)
    d_terms, g_terms = {}, {}
    for name, module in (("weighted", weighted), ("unweighted", unweighted)):
        attach_trainer(module)
        opt_g, opt_d = module.optimizers()
        torch.manual_seed(1)
        d_terms[name] = module.discriminator_step(real, opt_d, labels)
        torch.manual_seed(2)
        g_terms[name] = module.generator_step(real, opt_g, labels)
    d = d_terms["weighted"]
    assert d["class_loss"].item() > 0
    assert d["loss"].item() == pytest.approx(d["adversarial"].item() + weight * d["class_loss"].item(), rel=1e-6)
    g, g1 = g_terms["weighted"], g_terms["unweighted"]  # the same fakes (lr 0, same seeds): only the weight differs
    assert g["class_loss"].item() == pytest.approx(g1["class_loss"].item(), rel=1e-6) and g["class_loss"].item() > 0
    assert g["loss"].item() - g1["loss"].item() == pytest.approx((weight - 1.0) * g["class_loss"].item(), rel=1e-5, abs=1e-6)


def test_missing_or_bad_labels_are_clear_errors():
    g = DCGANGenerator(8, SHAPE, width=4, num_classes=3)
    with pytest.raises(ValueError, match=r"conditional on 3 classes: pass labels of shape \(2,\)"):
        g(torch.randn(2, 8))
    with pytest.raises(ValueError, match=r"labels in \[0, 3\), got values in \[0, 7\]"):
        g(torch.randn(2, 8), torch.tensor([0, 7]))
    with pytest.raises(ValueError, match=r"unconditional \(num_classes=None\) but was given labels"):
        DCGANGenerator(8, SHAPE, width=4)(torch.randn(2, 8), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"unknown discriminator conditioning 'sum'"):
        DCGANDiscriminator(SHAPE, num_classes=3, conditioning="sum")
    # labels that are not class indices were truncated (2.7 drew class 2, True class 1) or a torch traceback (an audit)
    for labels, shown in ((torch.tensor([2.7, 0.2]), "torch.float32"), (2.7, "torch.float32"), (True, "torch.bool"),
                          ("3", "'3'")):
        with pytest.raises(ValueError, match=rf"expects integer class indices as labels, got {re.escape(shown)}"):
            g.sample(2, labels=labels)
    assert g.sample(3, labels=range(3)).shape == g.sample(3, labels=np.array([0, 1, 2])).shape == (3, *SHAPE)
    for n in (0, -1, 2.0, True):  # a torch reshape or randn error before
        with pytest.raises(ValueError, match=rf"^sample\(n\): n is the number of samples, a positive integer; got {re.escape(repr(n))}$"):
            g.sample(n)


def test_the_module_feeds_the_batch_labels_to_both_networks():
    torch.manual_seed(0)
    module = GANModule(DCGANGenerator(8, SHAPE, width=4, num_classes=3), DCGANDiscriminator(SHAPE, width=4, num_classes=3),
                       HingeLoss(), {"generator": partial(torch.optim.Adam, lr=1e-3), "discriminator": partial(torch.optim.Adam, lr=1e-3)},
                       num_fixed_samples=8)
    attach_trainer(module)
    generated, discriminated = [], []
    module.generator.register_forward_pre_hook(lambda m, args: generated.append(args[1]))
    original = module.discriminator.evaluate
    module.discriminator.evaluate = lambda x, labels=None: discriminated.append(labels) or original(x, labels)
    module._log_terms = lambda prefix, terms: None
    labels = torch.tensor([2, 0, 1, 2])
    module.training_step((torch.randn(4, *SHAPE), labels), 0)
    assert len(generated) == 2 and all(torch.equal(y, labels) for y in generated)  # D step and G step fakes
    assert len(discriminated) == 3 and all(torch.equal(y, labels) for y in discriminated)  # real, fake, fake



@pytest.mark.parametrize("latent_dim", [0, -1])
def test_a_generator_without_noise_is_refused(latent_dim):
    # conditional with a label embedding, latent_dim=0 built a generator of the labels alone: one sample per class
    with pytest.raises(ValueError, match=rf"^latent_dim must be a positive integer \(the size of the noise z\), got {latent_dim}$"):
        DCGANGenerator(latent_dim, SHAPE, width=4, num_classes=3, conditioning="embedding")


def test_labels_on_a_device_are_not_read_back_by_the_networks():
    # on a GPU the range check would make the host wait at every forward; a meta tensor has no values, so
    # reading one (.item(), bool) raises: returning is the proof that nothing was read
    labels = torch.tensor([0, 7], device="meta")
    assert check_labels("G", 3, labels, 2).device.type == "meta"
    with pytest.raises(ValueError, match=r"expects labels of shape \(3,\), got \(2,\)"):  # the shape is still checked
        check_labels("G", 3, labels, 3)


def test_labels_outside_the_classes_are_named_on_the_host_before_the_transfer():
    data = GANDataModule(sample_shape=(2,), num_classes=3)
    batch = [torch.zeros(4, 2), torch.tensor([0, 2, 1, 2])]
    assert data.on_before_batch_transfer(batch, 0) is batch
    for bad, seen in ((torch.tensor([0, 3, 1, 2]), r"\[0, 3\]"), (torch.tensor([-1, 0, 1, 2]), r"\[-1, 2\]")):
        with pytest.raises(DataError, match=rf"data GANDataModule yields labels in {seen}; expected class indices in \[0, 3\)"):
            data.on_before_batch_transfer([torch.zeros(4, 2), bad], 0)
    unlabelled = [torch.zeros(4, 2), torch.full((4,), -1)]  # unlabelled data's -1s are not class indices
    assert GANDataModule(sample_shape=(2,)).on_before_batch_transfer(unlabelled, 0) is unlabelled


def test_a_run_whose_data_has_more_classes_than_declared_stops_with_one_line(make_cfg):
    # a data module whose labels (10-19) outgrow the 10 classes it declares: the conditional nets are too small for them
    cfg = make_cfg(tiny_overrides("cgan", "digits", steps=1) + [f"data._target_={LABELLED_PAST_THEIR_CLASSES}"])
    with pytest.raises(DataError, match=r"data digits yields labels in \[1\d, 1\d\]; expected class indices in \[0, 10\)"):  # a batch
        train(cfg)

def test_conditional_model_on_unlabelled_data_is_a_clear_error(make_cfg):
    cfg = make_cfg(tiny_overrides("cgan", "toy2d_grid", steps=1))
    with pytest.raises(ValueError, match=r"needs labelled data with 10 classes, but data toy2d_grid has num_classes=None"):
        train(cfg)


@pytest.mark.parametrize("data, value, message", [
    ("digits", 5, "data digits has 10 classes; expected 10, or data.num_classes left out"),  # was a TypeError traceback
    ("mnist", 20, "data mnist has 10 classes; expected 10"),  # trained a model built for 20 classes
    ("cifar10", 5, "data cifar10 has 10 classes; expected 10"),
    ("stacked_mnist", 1001, "data stacked_mnist has 1000 classes; expected 1000"),  # built unused classes silently
    ("stacked_mnist", 10, "data stacked_mnist has 1000 classes; expected 1000"),  # stopped at the first batch
    ("toy2d_ring", 8, "data toy2d_ring has no class labels; expected data.num_classes left out"),  # trained without labels
    ("celeba", 2, "data celeba has no class labels"),
    ("image_folder", 3, "data image_folder has no class labels"),
])
def test_a_class_count_the_data_does_not_have_is_refused_when_the_data_is_built(make_cfg, data, value, message):
    from gan.utils.errors import ConfigError
    from gan.utils.instantiate import build

    extra = ["data.path=/some/folder"] if data == "image_folder" else []
    cfg = make_cfg(tiny_overrides("cgan", data, steps=1) + extra + [f"++data.num_classes={value}"])
    with pytest.raises(ConfigError, match=rf"^data\.num_classes={value}: {re.escape(message)}"):
        build(cfg.data)
    if data in ("digits", "stacked_mnist"):  # the data's own count is accepted, and null means it
        own = 10 if data == "digits" else 1000
        for setting in (own, "null"):
            assert build(make_cfg(tiny_overrides("cgan", data, steps=1) + [f"++data.num_classes={setting}"]).data).num_classes == own


@pytest.mark.parametrize("model", ["cgan", "acgan"])
def test_conditional_run_gives_a_row_per_class_and_a_labelled_sampler(make_cfg, tmp_path, model):
    metrics, objects = train(make_cfg(tiny_overrides(model, "digits", steps=2) + ["callbacks.sample_grid.num_images=30"]))
    with Image.open(tmp_path / "run" / "samples" / "gstep_0000002.png") as grid:
        assert grid.size == (3 * 30 + 2, 10 * 30 + 2)  # 10 rows (classes) of 3, 28 px + 2 px padding
    if model == "acgan":
        assert {"train/d/class_loss", "train/g/class_loss", "train/d/class_accuracy"} <= set(metrics)
    generator = gan.load_generator(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert generator.sample(4, labels=[1, 2, 3, 4]).shape == (4, 1, 28, 28)
    a = generator.sample(3, generator=torch.Generator().manual_seed(0), labels=7)
    b = generator.sample(3, generator=torch.Generator().manual_seed(0), labels=torch.full((3,), 7))
    assert torch.equal(a, b)
    assert generator.sample(5).shape == (5, 1, 28, 28)  # uniform classes when none are asked for


class LabelledRing(GANDataModule):
    """Four well-separated Gaussians, the label is the mode: an easy labelled data set."""

    kind = "points"

    def __init__(self, batch_size=64):
        super().__init__((2,), "identity", batch_size, num_classes=4)
        self.modes = ring_modes(4, 2.0)

    def setup(self, stage=None):
        if self.train_set is None:
            points, which = sample_mixture(self.modes, 0.05, 4096, torch.Generator().manual_seed(0))
            self.train_set = TensorDataset(points, which)


@pytest.mark.slow
def test_generated_classes_follow_the_requested_labels():
    pl.seed_everything(0)
    data = LabelledRing()
    module = GANModule(
        MLPGenerator(4, (2,), hidden=[32, 32], output="identity", num_classes=4),
        MLPDiscriminator((2,), hidden=[32, 32], maxout_pieces=1, dropout=0.0, input_dropout=0.0, num_classes=4),
        NonSaturatingLoss(),
        {"generator": partial(torch.optim.Adam, lr=2e-3, betas=(0.5, 0.999)),
         "discriminator": partial(torch.optim.Adam, lr=2e-3, betas=(0.5, 0.999))},
        num_fixed_samples=8,
    )
    trainer = pl.Trainer(accelerator="cpu", max_steps=2 * 300, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, datamodule=data)
    requested = torch.arange(4).repeat_interleave(100)
    samples = module.generator.sample(400, generator=torch.Generator().manual_seed(1), labels=requested)
    nearest = torch.cdist(samples, data.modes).argmin(dim=1)
    accuracy = (nearest == requested).float().mean().item()
    print(f"class accuracy {accuracy:.3f}")
    assert accuracy > 0.9  # chance is 0.25


@pytest.mark.parametrize("conditioning", ["projection", "concat", "auxiliary"])
def test_one_pass_over_reals_and_fakes_equals_two_for_a_conditional_discriminator(conditioning):
    """GANModule.discriminate_real_and_fake: labels, class logits and every block's features split back
    into the real and the fake halves exactly as two passes give them."""
    torch.manual_seed(0)
    module = GANModule(generator=MLPGenerator(4, (2,), hidden=[8], output="identity", num_classes=3),
                       discriminator=MLPDiscriminator((2,), hidden=[8, 6], maxout_pieces=1, dropout=0.0, input_dropout=0.0,
                                                      num_classes=3, conditioning=conditioning),
                       loss=NonSaturatingLoss(), optimizer={"generator": partial(torch.optim.Adam), "discriminator": partial(torch.optim.Adam)})
    assert module.joint_discriminator_pass
    real, fake, labels = torch.randn(5, 2), torch.randn(5, 2), torch.tensor([0, 2, 1, 1, 0])
    joint = module.discriminate_real_and_fake(real, fake, labels)
    module.joint_discriminator_pass = False
    separate = module.discriminate_real_and_fake(real, fake, labels)
    for ours, theirs in zip(joint, separate):
        torch.testing.assert_close(ours.logits, theirs.logits)
        assert (ours.class_logits is None) == (theirs.class_logits is None) == (conditioning != "auxiliary")
        if ours.class_logits is not None:
            torch.testing.assert_close(ours.class_logits, theirs.class_logits)
        assert len(ours.features) == len(theirs.features) == 2
        for a, b in zip(ours.features, theirs.features):
            torch.testing.assert_close(a, b)
        # read as feature matching reads them (a negative block index) and as a slice of blocks
        torch.testing.assert_close(ours.features[-1], theirs.features[-1])
        for a, b in zip(ours.features[1:], theirs.features[1:], strict=True):
            torch.testing.assert_close(a, b)
