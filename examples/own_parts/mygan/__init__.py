"""Pieces of one's own for the GAN framework, outside its source tree (README, "Your own parts").

Each module is self-contained: a config names its classes with ``_target_: mygan.<module>.<Class>``, and the metric
registers itself when ``mygan.metrics`` is imported (``imports=[mygan.metrics]``). Nothing here is imported by the
framework unless a run asks for it; the folder holding ``mygan`` must be on ``PYTHONPATH``.
"""
