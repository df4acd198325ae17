"""Tiny network overrides per network family, shared by the tests and benchmarks/gpu_check.py's CPU smoke mode
(a module of its own: importing conftest would pin torch to one thread)."""

#: tiny networks per family, so a training run takes a second or two on CPU
TINY_NETS = {
    "mlp": ["model.generator.hidden=[16]", "model.discriminator.hidden=[16]", "model.generator.latent_dim=8"],
    "dcgan": ["model.generator.width=4", "model.discriminator.width=4", "model.generator.latent_dim=8"],
    # R3GAN's bottleneck needs width x expansion divisible by group_channels; on vector data both are MLPs
    # (``++``: set whether or not the variant or its per-data preset names the key)
    "r3gan": ["++model.generator.width=8", "++model.discriminator.width=8", "++model.generator.group_channels=4",
              "++model.discriminator.group_channels=4", "model.generator.latent_dim=8"],
}
