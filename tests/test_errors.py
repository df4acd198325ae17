"""User errors end train.py and evaluate.py with one line on stderr and exit status 2; bugs keep their traceback.

The command-line cases run as entry points (the entry points and Hydra are what is tested), all started together
by one fixture: forked from one interpreter that imported them once (a subprocess pays ~7 s of imports), two of
them also as real subprocesses."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from hydra.errors import InstantiationException

from gan.utils.config import PROJECT_ROOT
from gan.utils.errors import CheckpointError, ConfigError, exit_on_user_error, user_error_behind
from tests.conftest import tiny_overrides
from tests.preloaded import run_preloaded

FAST = ["logger=none", "trainer.accelerator=cpu", "callbacks.progress_bar=null"]


class Boom(pl.Callback):
    """A bug (not a user error) in the middle of a run."""

    def on_train_start(self, trainer, pl_module):
        raise RuntimeError("boom: a bug, not a user error")


def cases(tmp):
    foreign = tmp / "foreign.ckpt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    corrupt = tmp / "corrupt.ckpt"
    corrupt.write_bytes(b"PK\x03\x04 truncated")
    sweep = ["-m", "hparams_search=optuna", "hydra.sweeper.n_trials=1", f"hydra.sweep.dir={tmp / 'sweep'}",
             f"paths.log_dir={tmp / 'logs'}", "data=toy2d_ring"]
    return {
        # name: (script, arguments, extra environment)
        "missing_data": ("train.py", ["data=mnist", "data.root=/nowhere", "data.download=false"], {}),
        "conditional_on_unlabelled": ("train.py", ["model=cgan", "data=toy2d_grid"], {}),
        # the shipped logger: W&B printed its start-up lines on stderr before the refusal (an audit)
        "conditional_on_unlabelled_wandb": ("train.py", ["model=cgan", "data=toy2d_grid", "logger=wandb"],
                                            {"WANDB_MODE": "offline", "WANDB_SILENT": "false"}),
        "option_out_of_range": ("train.py", ["model.n_critic=0"], {}),
        "trainer_refuses_option": ("train.py", ["trainer.devices=0"], {}),
        "unknown_precision": ("train.py", ["trainer.precision=fp12"], {}),
        "corrupt_checkpoint": ("evaluate.py", [f"ckpt_path={corrupt}"], {}),
        "foreign_checkpoint": ("evaluate.py", [f"ckpt_path={foreign}"], {}),
        # an objective the run never logs: the sweep stops before the first trial trains
        "objective_never_logged": ("train.py", [*sweep, "optimized_metric=val/fid"], {}),
        # composition errors: Hydra's multi-line report and status 1 before the task runs, unless intercepted
        "unknown_group_option": ("train.py", ["model=wgn"], {}),
        "unknown_option_in_a_list": ("train.py", ["metrics=[fid,nope]"], {}),
        "misspelt_key": ("train.py", ["model.n_critc=3"], {}),
        "unknown_top_level_key": ("train.py", ["y=1"], {}),
        "unparsable_override": ("train.py", ["model.n_critic=["], {}),
        "misspelt_key_evaluate": ("evaluate.py", ["ckpt_pth=x.ckpt"], {}),
        # argparse's style: Hydra's 8-line usage and "unrecognized arguments" (a README walk-through)
        "dashed_override": ("train.py", ["--generator_steps=4"], {}),
        "dashed_override_evaluate": ("evaluate.py", ["--ckpt_path", "x.ckpt"], {}),
        # Hydra: "No match in the defaults list ... use +model=dcgan", which then failed inside model/dcgan.yaml
        "training_group_in_evaluate": ("evaluate.py", ["ckpt_path=x.ckpt", "+model=dcgan"], {}),
        "evaluate_option_not_a_number": ("evaluate.py", ["ckpt_path=x.ckpt", "num_samples=abc"], {}),
        # options that used to fail later, as a TypeError, ValueError or RuntimeError with a traceback
        "augment_given_a_string": ("train.py", ["data=toy2d_ring", "model.augment=diffaugment"], {}),
        "batch_size_not_positive": ("train.py", ["data=toy2d_ring", "data.batch_size=0"], {}),
        "network_width_zero": ("train.py", ["model=gan", "data=toy2d_ring", "model.discriminator.hidden=[0,10]"], {}),
        "network_width_negative": ("train.py", ["model=dcgan", "model.generator.width=-2"], {}),
        "network_width_zero_resnet": ("train.py", ["model=sngan", "arch=resnet", "model.generator.width=0"], {}),
        "generator_steps_not_a_number": ("train.py", ["generator_steps=abc"], {}),
        "optimizer_refuses_option": ("train.py", ["data=toy2d_ring", "optimizer.generator.lr=-1"], {}),
        # options of the wrong type: a TypeError or ValueError deep in a layer or optimizer before
        "option_not_an_integer": ("train.py", ["data=toy2d_ring", "model.generator.width=abc"], {}),
        "optimizer_option_not_a_number": ("train.py", ["data=toy2d_ring", "optimizer.generator.lr=abc"], {}),
        "tuple_option_of_the_wrong_length": ("train.py", ["data=toy2d_ring", "optimizer.discriminator.betas=[0.5]"], {}),
        "trick_out_of_range": ("train.py", ["data=toy2d_ring", "model.label_flip_prob=2"], {}),
        "metrics_interval_negative": ("train.py", ["data=toy2d_ring", "metrics.every_n_generator_steps=-5"], {}),
        # a config group given null: Hydra's defaults list raised a ValueError naming neither the group nor its options
        "group_choice_null": ("train.py", ["presets=null", "data=toy2d_ring"], {}),
        # a second audit of the config matrix: tracebacks, and lines that pointed the wrong way
        "missing_value": ("train.py", ["model=dcgan", "model.generator.latent_dim=???"], {}),
        "batch_of_one_with_batch_norm": ("train.py", ["model=dcgan", "data=toy2d_grid", "data.batch_size=1"], {}),
        "class_count_mismatch": ("train.py", ["model=cgan", "model.generator.num_classes=5"], {}),
        "preset_option_the_chosen_optimizer_lacks": ("train.py", ["model=dcgan", "optimizer=rmsprop_wgan"], {}),
        "slurm_launcher_without_slurm": ("train.py", ["-m", "hydra/launcher=slurm", f"hydra.sweep.dir={tmp / 'slurm'}",
                                                      "data=toy2d_ring", "generator_steps=2"], {}),
        # a key added to a group of objects: a traceback from the schedules' check in train.py's main (an audit)
        "schedule_entry_not_a_config": ("train.py", ["data=toy2d_ring", "+model.schedules.foo=1"], {}),
        # pieces of one's own (an audit): Hydra's "Error locating target" hid the cause behind HYDRA_FULL_ERROR=1
        "target_misspelt": ("train.py", ["data=toy2d_ring", "loss._target_=gan.losses.HingeLos"], {}),
        "own_target_not_on_the_path": ("train.py", ["data=toy2d_ring", "model.generator._target_=mypkg_not_here.nets.G"], {}),
        "own_module_raises_on_import": ("train.py", ["data=toy2d_ring",
                                                     "loss._target_=tests.own_parts.raises_on_import.Loss"], {}),
        "imports_not_a_module": ("train.py", ["data=toy2d_ring", "imports=[mypkg_not_here.metrics]"], {}),
        "imports_not_a_module_evaluate": ("evaluate.py", ["ckpt_path=x.ckpt", "imports=[mypkg_not_here.metrics]"], {}),
        "callback_not_a_callback": ("train.py", ["data=toy2d_ring", "+callbacks.mine._target_=tests.own_parts.parts.NotACallback"], {}),
        "callback_without_its_option": ("train.py", ["data=toy2d_ring",
                                                     "+callbacks.mine._target_=tests.own_parts.parts.EveryNCallback"], {}),
        "data_module_not_a_gan_data_module": ("train.py", ["data=toy2d_ring",
                                                           "data._target_=tests.test_own_parts_data.PlainSpiral"], {}),
        "data_module_from_a_factory": ("train.py", ["data=toy2d_ring", "data._target_=tests.test_own_parts_data.make_plain_spiral"], {}),
        "full_error_asked_for": ("train.py", ["model.n_critic=0"], {"HYDRA_FULL_ERROR": "1"}),
        "full_error_asked_for_composing": ("train.py", ["model=wgn"], {"HYDRA_FULL_ERROR": "1"}),
        "bug": ("train.py", [*tiny_overrides("gan", "toy2d_ring", steps=2), "+callbacks.boom._target_=tests.test_errors.Boom"], {}),
    }


# Cases that also run as real subprocesses, so that whatever importing the entry points prints is seen too;
# the others run in children forked from one interpreter that imported them once (tests/preloaded.py).
REAL_PROCESSES = ("option_out_of_range", "corrupt_checkpoint")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("errors")

    def command_line(name, script, arguments):
        given = {argument.split("=", 1)[0] for argument in arguments}
        fast = [o for o in FAST if o.split("=", 1)[0] not in given] if script == "train.py" else []
        run_dir = [] if "-m" in arguments else [f"hydra.run.dir={tmp / name}"]
        return [script, *arguments, *fast, f"paths.data_dir={tmp / 'data'}", *run_dir]

    def environment(extra):
        return {**os.environ, "OMP_NUM_THREADS": "1", **extra}

    def real_process(name):
        script, arguments, env = cases(tmp)[name]
        return subprocess.run([sys.executable, *command_line(f"{name}_real", script, arguments)], cwd=PROJECT_ROOT,
                              capture_output=True, text=True, timeout=300, env=environment(env))

    forked = {name: (command_line(name, script, arguments), environment(env))
              for name, (script, arguments, env) in cases(tmp).items()}
    with ThreadPoolExecutor(len(REAL_PROCESSES)) as pool:
        real = pool.map(real_process, REAL_PROCESSES)
        results = run_preloaded(forked, PROJECT_ROOT, tmp / "outputs")
        results |= {f"{name}_real": result for name, result in zip(REAL_PROCESSES, real)}
    return results | {"tmp": tmp}


@pytest.mark.slow
@pytest.mark.parametrize("name,message", [
    ("missing_data", r"mnist not found in /nowhere/MNIST/raw .*fix: set data.root"),
    ("conditional_on_unlabelled", r"a conditional model needs labelled data with 10 classes, but data toy2d_grid has num_classes=None"),
    ("conditional_on_unlabelled_wandb", r"a conditional model needs labelled data with 10 classes, but data toy2d_grid has num_classes=None"),
    ("option_out_of_range", r"model.n_critic must be a positive integer, got 0"),
    ("option_out_of_range_real", r"model.n_critic must be a positive integer, got 0"),
    # Lightning's own refusals (a MisconfigurationException, a ValueError) behind Hydra's wrapper
    ("trainer_refuses_option", r"trainer: `Trainer\(devices=0\)` value is not a valid input"),
    ("unknown_precision", r"trainer.precision=fp12: expected one of 64, 32, 16, .*'32-true'.* \(Trainer's precision\)"),
    ("corrupt_checkpoint", r"cannot read checkpoint .*corrupt.ckpt: "),
    ("corrupt_checkpoint_real", r"cannot read checkpoint .*corrupt.ckpt: "),
    ("foreign_checkpoint", r"foreign.ckpt is not a checkpoint of this framework"),
    ("objective_never_logged", r"optimized_metric=val/fid is not logged by this run: its metrics \(mode_coverage\) log "
                               r"\['val/mode_coverage/high_quality', 'val/mode_coverage/modes', 'val/mode_coverage/reverse_kl'\]"),
    ("unknown_group_option", r"model=wgn: there is no such model config \(expected one of acgan, cgan, dcgan, gan, lsgan, "
                             r"r3gan, sngan, wgan, wgan_gp\)"),
    ("unknown_option_in_a_list", r"metrics=nope: there is no such metrics config \(expected one of .*, fid, .*mode_coverage, .*\)"),
    ("misspelt_key", r"model.n_critc=3: model has no key n_critc; did you mean n_critic\? \(\+model.n_critc=3 would add "
                     r"it as a new key\)"),
    # Hydra's "Key 'y' is not in struct" named no key that exists
    ("unknown_top_level_key", r"y=1: the config has no key y; expected one of burn_in, callbacks, .*, trainer \(\+y=1 "
                              r"would add it as a new key\)"),
    ("unparsable_override", r"cannot parse the override 'model.n_critic=\[': .*"),
    ("misspelt_key_evaluate", r"ckpt_pth=x.ckpt: the config has no key ckpt_pth; did you mean ckpt_path\?"),
    ("dashed_override", r"--generator_steps=4: options are Hydra overrides, written key=value without dashes; expected "
                        r"generator_steps=4"),
    ("dashed_override_evaluate", r"--ckpt_path: options are Hydra overrides, .*; expected ckpt_path=x.ckpt"),
    ("training_group_in_evaluate", r"\+model=dcgan: evaluate.py scores the generator its checkpoint holds, with the "
                                   r"run's own model, loss and optimizer \(its run_config\); expected evaluate.py's "
                                   r"options \(ckpt_path, .*\), or train.py for model"),
    ("evaluate_option_not_a_number", r"num_samples=abc is not valid: expected an integer from 1 to 10000000"),
    ("augment_given_a_string", r"model.augment must be an Augment \(choose it with augment=diffaugment or augment=ada, or "
                               r"augment=null\), got str 'diffaugment'"),
    ("batch_size_not_positive", r"data.batch_size must be a positive integer, got 0"),
    ("network_width_zero", r"model.discriminator.hidden=\[0, 10\]: network sizes \(widths, depths, latent_dim\) must be "
                           r"positive: the discriminator has a layer of size 0 \(.*, shape \[0, .*\]\)"),
    ("network_width_negative", r"model.generator.width=-2: network sizes .* must be positive: .*negative dimension.*"),
    ("network_width_zero_resnet", r"model.generator.width=0: network sizes .* must be positive: ZeroDivisionError: .*"),
    ("generator_steps_not_a_number", r"generator_steps=abc is not valid: expected an integer >= 1"),
    ("optimizer_refuses_option", r"optimizer.generator: Invalid learning rate: -1"),
    ("option_not_an_integer", r"model.generator.width=abc: expected an integer \(R3GANGenerator's width\)"),
    ("optimizer_option_not_a_number", r"optimizer.generator.lr=abc: expected a number \(Adam's lr\)"),
    ("tuple_option_of_the_wrong_length", r"optimizer.discriminator.betas=\[0.5\]: expected a list of 2 numbers \(Adam's betas\)"),
    ("trick_out_of_range", r"model.label_flip_prob must be in \[0, 0.5\), got 2"),
    ("metrics_interval_negative", r"metrics.every_n_generator_steps=-5 is not valid: expected an integer >= 0 or null"),
    ("group_choice_null", r"presets=null: expected one of none, tuned \(the name of a presets config\)"),
    ("missing_value", r"model.generator.latent_dim=\?\?\? has no value: expected a value, e.g. model.generator.latent_dim=<value>"),
    ("batch_of_one_with_batch_norm", r"data.batch_size=1: the generator normalises its layers over the batch \(BatchNorm1d\), "
                                     r"which needs 2 samples or more; expected data.batch_size >= 2"),
    ("class_count_mismatch", r"model.generator.num_classes=5, but data digits has 10 classes; expected 10"),
    ("preset_option_the_chosen_optimizer_lacks", r"optimizer=rmsprop_wgan: the per-data preset tuned/dcgan/digits sets "
                                                 r"optimizer.discriminator.betas, which RMSprop does not take; add presets=none"),
    ("slurm_launcher_without_slurm", r"hydra/launcher=slurm submits every job to SLURM, but this machine has no SLURM"),
    ("schedule_entry_not_a_config", r"model.schedules.foo=1: expected a schedule's config \(a mapping with _target_\), or "
                                    r"null to leave it out"),
    ("target_misspelt", r"loss._target_=gan.losses.HingeLos: it does not import: gan.losses has no HingeLos; did you mean "
                        r"HingeLoss\?"),
    ("own_target_not_on_the_path", r"model.generator._target_=mypkg_not_here.nets.G: it does not import: there is no module "
                                   r"mypkg_not_here here \(a module of one's own must be next to train.py, installed, or in a "
                                   r"folder on PYTHONPATH\)"),
    ("own_module_raises_on_import", r"loss._target_=tests.own_parts.raises_on_import.Loss: it does not import: importing "
                                    r"tests.own_parts.raises_on_import raised ZeroDivisionError: division by zero "
                                    r"\(\S+/tests/own_parts/raises_on_import.py, line 2\)"),
    ("imports_not_a_module", r"imports: module mypkg_not_here.metrics does not import: there is no module mypkg_not_here "
                             r"here; expected modules next to train.py, installed, or in a folder on PYTHONPATH"),
    ("imports_not_a_module_evaluate", r"imports: module mypkg_not_here.metrics does not import: there is no module "
                                      r"mypkg_not_here here; .*"),
    ("callback_not_a_callback", r"callbacks.mine._target_=tests.own_parts.parts.NotACallback: NotACallback is not a "
                                r"lightning.pytorch.Callback; expected a subclass of it"),
    ("callback_without_its_option", r"callbacks.mine: EveryNCallback needs the option every; expected callbacks.mine.every=<value>"),
    ("data_module_not_a_gan_data_module", r"data._target_=tests.test_own_parts_data.PlainSpiral: PlainSpiral is a "
                                          r"LightningDataModule but not a gan.data.GANDataModule; expected a data module of "
                                          r"one's own to subclass gan.data.GANDataModule \(.*\)"),
    ("data_module_from_a_factory", r"data._target_=tests.test_own_parts_data.PlainSpiral: PlainSpiral is a "
                                   r"LightningDataModule but not a gan.data.GANDataModule"),
])
def test_user_error_is_one_line_and_exit_status_2(results, name, message):
    import re

    result = results[name]
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "Error executing job" not in result.stderr
    lines = result.stderr.strip().splitlines()
    if name == "objective_never_logged":  # Hydra and Optuna announce the sweep on stderr first
        assert not (results["tmp"] / "sweep" / "0" / "checkpoints").exists()  # nothing trained
        lines = lines[-1:]
    assert len(lines) == 1, result.stderr
    assert re.fullmatch(rf"error: .*{message}.*", lines[0]), lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("name,shown,one_line", [
    ("full_error_asked_for", "ConfigError: model.n_critic must be a positive integer, got 0", "error: model.n_critic"),
    ("full_error_asked_for_composing", "MissingConfigException", "error: model=wgn"),  # raised before the task runs
])
def test_hydra_full_error_shows_the_traceback(results, name, shown, one_line):
    result = results[name]
    assert result.returncode == 1
    assert "Traceback" in result.stderr and shown in result.stderr
    assert one_line not in result.stderr


@pytest.mark.slow
def test_a_bug_keeps_its_traceback(results):
    result = results["bug"]
    assert result.returncode == 1
    assert "Error executing job" in result.stderr and "RuntimeError: boom: a bug, not a user error" in result.stderr
    assert "error: boom" not in result.stderr
    # the run's own log says what ended it, traceback included (it ended as if the run went on: a DDP audit); so does a
    # user error's, with its one line
    logged = (results["tmp"] / "bug" / "train.log").read_text()
    assert "the run ended with an exception (a bug to report):" in logged and "RuntimeError: boom: a bug" in logged
    missing = (results["tmp"] / "missing_data" / "train.log").read_text().strip().splitlines()[-1]
    assert re.search(r"error: mnist not found in /nowhere/MNIST/raw .*fix: set data.root", missing), missing


# ------------------------------------------------------------------------------------ the wrapper itself
def test_user_errors_are_found_behind_hydra_and_omegaconf_wrappers():
    from omegaconf import OmegaConf

    error = ConfigError("model.n_critic must be a positive integer, got 0")
    try:
        raise InstantiationException("Error in call to target 'gan.module.GANModule'") from error
    except InstantiationException as wrapped:
        assert user_error_behind(wrapped) is error

    def bad_resolver():
        raise ConfigError("metrics.monitor='nope' is not computed")

    OmegaConf.register_new_resolver("test_errors_bad", bad_resolver, replace=True)
    with pytest.raises(Exception) as resolving:
        OmegaConf.create({"x": "${test_errors_bad:}"}).x
    assert str(user_error_behind(resolving.value)) == "metrics.monitor='nope' is not computed"

    try:
        raise ValueError("a bug") from ConfigError("not a cause a user can act on through a ValueError")
    except ValueError as bug:
        assert user_error_behind(bug) is None  # only wrappers are looked through


def test_wrapper_prints_one_line_and_exits_with_the_error_status(capsys, monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)

    @exit_on_user_error
    def task(error):
        raise error

    with pytest.raises(SystemExit) as exited:
        task(CheckpointError("cannot read checkpoint x.ckpt:\n  the zip archive is truncated"))
    assert exited.value.code == 2
    assert capsys.readouterr().err == "error: cannot read checkpoint x.ckpt: the zip archive is truncated\n"
    with pytest.raises(KeyError):  # anything else is left alone
        task(KeyError("bug"))
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(CheckpointError):
        task(CheckpointError("shown with its traceback"))


@pytest.mark.parametrize("options,message", [
    ({"seed": 3, "generator_steps": 10, "cpu_threads": None}, None),
    ({"seed": "7", "generator_steps": "10", "cpu_threads": 2}, None),  # strings, as an ${oc.env:...} gives them
    ({"seed": 2**32 - 1, "generator_steps": 1}, None),
    ({"seed": 1.5, "generator_steps": 10}, "seed=1.5 is not valid: expected an integer from 0 to 4294967295"),
    # numpy, which seed_everything seeds, takes 0 .. 2**32 - 1 (a ValueError traceback before)
    ({"seed": -1, "generator_steps": 10}, "seed=-1 is not valid: expected an integer from 0 to 4294967295"),
    ({"seed": 2**32, "generator_steps": 10}, "seed=4294967296 is not valid: expected an integer from 0 to 4294967295"),
    ({"seed": 0, "generator_steps": 0}, "generator_steps=0 is not valid: expected an integer >= 1"),
    # null where an option is not nullable (a mutation audit: it passed the check and failed later with a traceback)
    ({"seed": 0, "generator_steps": None}, "generator_steps=None is not valid: expected an integer >= 1"),
    ({"seed": None, "generator_steps": 5}, "seed=None is not valid: expected an integer from 0 to 4294967295"),
    ({"seed": 0, "generator_steps": True}, "generator_steps=True is not valid: expected an integer >= 1"),
    ({"seed": 0, "generator_steps": "1e3"}, "generator_steps=1e3 is not valid: expected an integer >= 1"),
    # Hydra reads 1e12 as a float: "expected an integer >= 1" seemed to refuse the size (an audit)
    ({"seed": 0, "generator_steps": 1e12}, "generator_steps=1000000000000.0 is not valid: expected an integer >= 1, "
                                           "written out in digits, e.g. generator_steps=1000000000000 (Hydra reads a number "
                                           "with an exponent or a decimal point, such as 1e3, as a decimal number)"),
    ({"seed": 0, "generator_steps": 1e3}, "generator_steps=1000.0 is not valid: expected an integer >= 1, written out in "
                                          "digits, e.g. generator_steps=1000 (Hydra reads a number with an exponent or a "
                                          "decimal point, such as 1e3, as a decimal number)"),
    ({"seed": 0, "generator_steps": 5, "cpu_threads": 0}, "cpu_threads=0 is not valid: expected an integer >= 1 or null"),
    ({"seed": 0, "generator_steps": 5, "compile": "maybe"}, "compile=maybe is not valid: expected true or false"),
    ({"seed": 0, "generator_steps": 5, "compile": True}, None),
    # a TypeError from inside pathlib (an audit)
    ({"seed": 0, "generator_steps": 5, "ckpt_path": -1}, "ckpt_path=-1 is not valid: expected a path (a string), or null"),
    ({"seed": 0, "generator_steps": 5, "ckpt_path": "last"}, None),
    # Lightning's max_steps by hand (it won over generator_steps, silently): only the value derived from it passes
    ({"seed": 0, "generator_steps": 10, "model": {"n_critic": 5}, "trainer": {"max_steps": 60}}, None),
    ({"seed": 0, "generator_steps": 10, "model": {"n_critic": 5}, "trainer": {"max_steps": 10}},
     "trainer.max_steps=10: the run's length is generator_steps=10, from which Lightning's max_steps (every D and G "
     "update: 60 here) is derived; set generator_steps instead and leave trainer.max_steps out"),
    ({"seed": 0, "generator_steps": 10, "model": {"n_critic": 5},
      "trainer": {"max_steps": "${optimizer_steps:${generator_steps},${model.n_critic},1}"}}, None),
])
def test_run_options_are_checked_before_anything_reads_them(options, message):
    from omegaconf import OmegaConf

    from gan.utils.config import check_run_options

    cfg = OmegaConf.create(options)
    if message is None:
        check_run_options(cfg)
    else:
        with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
            check_run_options(cfg)


@pytest.mark.parametrize("options,message", [
    ({}, None),
    ({"seeds": [0, "3"], "device": "cuda:1", "num_images": 1}, None),
    ({"seeds": [0, 1.5]}, "seeds=[0, 1.5] is not valid: expected a list of integers (e.g. seeds=[0,1,2]) or null"),
    ({"seeds": []}, "seeds=[] is not valid: expected a list of integers (e.g. seeds=[0,1,2]) or null"),
    # numpy's range: a negative seed was numpy's "expected non-negative integer" traceback
    ({"seed": -1}, "seed=-1 is not valid: expected an integer from 0 to 4294967295"),
    ({"seeds": [2, -1]}, "seeds=[2, -1]: -1 is outside 0 .. 4294967295; expected latent seeds in that range"),
    ({"seeds": [4294967295]}, None),
    ({"num_samples": 10**7}, None),
    # it was read by the metrics (metrics.num_samples) and hung counting its batches (an audit)
    ({"num_samples": 10**12}, "num_samples=1000000000000 is not valid: expected an integer from 1 to 10000000"),
    ({"interpolation": {"rows": 2, "steps": 1}}, "interpolation.steps=1 is not valid: expected an integer >= 2"),
    ({"use_ema": "yes"}, "use_ema=yes is not valid: expected true or false"),
    ({"device": "tpu"}, "device=tpu is not valid: expected auto, cpu, cuda, cuda:<index> or another torch device"),
    # torch would fail at the first tensor moved there (with no GPU: "Found no NVIDIA driver", a traceback)
    ({"device": "cuda:2"}, "device=cuda:2: this machine has 2 CUDA devices; expected auto or cpu, or cuda:0 to cuda:1"),
])
def test_evaluate_options_are_checked_before_anything_reads_them(options, message, monkeypatch):
    from omegaconf import OmegaConf

    from gan.utils.config import check_evaluate_options

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a machine with two GPUs, wherever this runs
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)

    defaults = {"seed": 0, "seeds": None, "num_samples": 10, "num_images": 64, "num_points": 2500, "use_ema": True,
                "device": "auto", "interpolation": {"rows": 8, "steps": 10}}
    cfg = OmegaConf.merge(defaults, options)
    if message is None:
        check_evaluate_options(cfg)
    else:
        with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
            check_evaluate_options(cfg)


def test_a_cuda_device_on_a_machine_without_one_is_refused(monkeypatch):
    from omegaconf import OmegaConf

    from gan.utils.config import check_evaluate_options

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = OmegaConf.create({"seed": 0, "seeds": None, "num_samples": 10, "num_images": 64, "num_points": 2500,
                            "use_ema": True, "device": "cuda", "interpolation": {"rows": 8, "steps": 10}})
    with pytest.raises(ConfigError, match=r"^device=cuda: this machine has 0 CUDA devices; expected auto or cpu$"):
        check_evaluate_options(cfg)


def test_a_trainer_option_of_the_wrong_kind_or_unknown_names_the_trainer():
    from omegaconf import OmegaConf

    from gan.utils.instantiate import build_trainer

    for options, message in ((({"accelerator": "cpu", "devices": "abc"}), r"`devices` selected with `CPUAccelerator` should be an int > 0"),
                             # refused before the Trainer is built, against its parameters (it was its TypeError)
                             ({"accelerator": "cpu", "foo": 1}, r"Trainer takes no option foo \(a TypeError when it is built\)$")):
        node = OmegaConf.create({"trainer": {"_target_": "lightning.pytorch.Trainer", **options}}).trainer
        with pytest.raises(ConfigError, match=rf"^trainer: .*{message}"):
            build_trainer(node, [])


@pytest.mark.parametrize("option,value,neutral,expected", [("gradient_clip_val", 1.0, 0, "null or 0"),
                                                            ("accumulate_grad_batches", 4, 1, "1")])
def test_automatic_optimization_options_are_refused_before_fit(option, value, neutral, expected):
    """Lightning refuses them only when fit starts, with a traceback: the module steps its optimizers itself."""
    from omegaconf import OmegaConf

    from gan.utils.instantiate import build_trainer

    build_trainer(OmegaConf.create({"_target_": "lightning.pytorch.Trainer", "accelerator": "cpu", option: neutral}), [])
    node = OmegaConf.create({"_target_": "lightning.pytorch.Trainer", "accelerator": "cpu", option: value})
    with pytest.raises(ConfigError, match=rf"^trainer.{option}={value}: the GAN module steps its two optimizers itself "
                                          rf".*; expected {expected} \("):
        build_trainer(node, [])


def test_a_callback_option_lightning_refuses_names_the_callback():
    from omegaconf import OmegaConf

    from gan.utils.instantiate import instantiate_group

    callbacks = OmegaConf.create({"callbacks": {"best_checkpoint": {"_target_": "lightning.pytorch.callbacks.ModelCheckpoint",
                                                                    "every_n_train_steps": -3}}})
    with pytest.raises(ConfigError, match=r"^callbacks.best_checkpoint: Invalid value for every_n_train_steps=-3. Must be >= 0$"):
        instantiate_group(callbacks.callbacks)


def test_an_optimizer_built_whole_instead_of_as_a_factory_is_refused(make_cfg):
    from gan.utils.instantiate import build_module

    cfg = make_cfg(tiny_overrides("dcgan", "digits", steps=1) + ["optimizer.discriminator._partial_=false"])
    # built at once, Adam was missing its params: a TypeError traceback (an audit)
    with pytest.raises(ConfigError, match=r"^optimizer.discriminator._partial_=false: expected true \(the optimizer is "
                                          r"built when training starts, with the discriminator's parameters\)$"):
        build_module(cfg)


@pytest.mark.parametrize("override,message", [
    ("model.discriminator.dropout=-1", r"model.discriminator: dropout must be in \[0, 1\), got -1"),
    ("model.discriminator.negative_slope=-1", r"model.discriminator: negative_slope must be >= 0 \(0 is ReLU\), got -1"),
    ("model.penalties.gradient_penalty.weight=-1", r"model.penalties.gradient_penalty: GradientPenalty weight must be >= 0, got -1"),
    ("data.batch_size=0", r"data.batch_size must be a positive integer, got 0"),  # names its key already: unchanged
])
def test_a_constructor_s_refusal_is_led_by_the_key_of_its_config_node(make_cfg, override, message):
    from gan.utils.instantiate import build, build_module

    cfg = make_cfg(tiny_overrides("wgan_gp", "toy2d_ring", steps=1) + [override])
    with pytest.raises(ConfigError, match=rf"^{message}$"):
        build(cfg.data)  # the data's own refusal names its key; the others come from the model's nodes
        build_module(cfg)


@pytest.mark.parametrize("key,message,shown", [
    ("model.discriminator", "dropout must be in [0, 1), got -1", "model.discriminator: dropout must be in [0, 1), got -1"),
    ("model.augment", "AdaptiveAugment interval must be ...", "model.augment: AdaptiveAugment interval must be ..."),
    # options named already: the metrics callback's node is callbacks.metrics, its options are set as metrics.*
    ("callbacks.metrics", "metrics.batch_size must be a positive integer, got 0", None),
    ("model", "instance noise needs model.instance_noise_std >= 0, ...", None),
    ("model.discriminator", "model.discriminator.hidden=[0, 10]: network sizes ...", None),
    (None, "dropout must be in [0, 1), got -1", None),  # no key known
])
def test_the_config_key_leads_a_refusal_only_where_it_adds_one(key, message, shown):
    from gan.utils.instantiate import with_config_key

    error = ConfigError(message)
    led = with_config_key(error, key)
    assert type(led) is ConfigError and str(led) == (shown or message)
    plain = ValueError(message)
    assert with_config_key(plain, key) is plain  # not a user error (a bug's message): left as it is


def test_a_callback_s_refusal_is_led_by_its_config_key():
    from omegaconf import OmegaConf

    from gan.utils.instantiate import instantiate_group

    for depth in (0, -1):  # 0 grouped as null does, a negative depth cut the end off every module path
        callbacks = OmegaConf.create({"callbacks": {"grad_norm": {"_target_": "gan.callbacks.GradNorm", "group_depth": depth}}})
        with pytest.raises(ConfigError, match=rf"^callbacks.grad_norm: group_depth must be a positive integer \(leading name "
                                              rf"components per group\) or null \(one group per module\), got {depth}$"):
            instantiate_group(callbacks.callbacks)


def test_non_positive_network_sizes_are_named():
    from omegaconf import OmegaConf

    from gan.utils.instantiate import network_size_error, non_positive_sizes

    model = OmegaConf.create({"generator": {"width": 64, "latent_dim": 0, "spectral_norm": False},
                              "discriminator": {"hidden": [240, -1], "width": 8}})
    assert non_positive_sizes(model, ("generator", "discriminator")) == ["model.generator.latent_dim=0", "model.discriminator.hidden=[240, -1]"]
    assert non_positive_sizes(model, ("discriminator",)) == ["model.discriminator.hidden=[240, -1]"]
    assert str(network_size_error(model, ("generator",), "a layer of size 0")) == (
        "model.generator.latent_dim=0: network sizes (widths, depths, latent_dim) must be positive: a layer of size 0")
    # booleans are not sizes; nothing found still names where to look
    assert non_positive_sizes(OmegaConf.create({"generator": {"width": 4, "bias": False}}), ("generator",)) == []
    assert str(network_size_error(OmegaConf.create({}), ("generator", "discriminator"), "x")).startswith(
        "model.generator / model.discriminator: network sizes")


def test_composition_errors_are_described_in_one_line():
    from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
    from omegaconf import OmegaConf

    from gan.utils.errors import describe_composition_error

    missing = MissingConfigException("In 'train': Could not find 'loss/hing'\n\nAvailable options in 'loss':\n\thinge\n\tminimax",
                                     missing_cfg_file="loss/hing", options=["minimax", "hinge"])
    assert describe_composition_error(missing) == "loss=hing: there is no such loss config (expected one of hinge, minimax)"
    parse = OverrideParseException("model.n_critic=[", "no viable alternative at input '['\nSee the grammar")
    assert describe_composition_error(parse) == "cannot parse the override 'model.n_critic=[': no viable alternative at input '[' See the grammar"
    cfg = OmegaConf.create({"model": {"n_critic": 1, "n_generator": 1}})
    OmegaConf.set_struct(cfg, True)
    try:
        cfg.model.n_critc = 3
    except Exception as key_error:
        cause = key_error
    try:
        raise ConfigCompositionException("Could not override 'model.n_critc'.\nTo append to your config use "
                                         "+model.n_critc=3") from cause
    except ConfigCompositionException as composed:
        described = describe_composition_error(composed)
    assert described == "model.n_critc=3: model has no key n_critc; did you mean n_critic? (+model.n_critc=3 would add it " \
                        "as a new key)"
    # nothing close: the node's keys, without OmegaConf's own (_target_); without Hydra's text, the key's full name
    cfg = OmegaConf.create({"_target_": "x", "width": 8, "depth": 2})
    OmegaConf.set_struct(cfg, True)
    try:
        cfg.zzz = 1
    except Exception as key_error:
        cause = key_error
    try:
        raise ConfigCompositionException("Could not override 'zzz'.") from cause
    except ConfigCompositionException as composed:
        assert describe_composition_error(composed) == "zzz: the config has no key zzz; expected one of depth, width " \
                                                       "(+zzz would add it as a new key)"


def test_a_gpu_trainer_without_a_gpu_names_the_option_and_what_to_use(monkeypatch):
    """Lightning's own refusal was `No supported gpu backend found!`, naming neither."""
    import torch

    from gan.utils.instantiate import check_accelerator_present

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    for accelerator in ("gpu", "cuda"):
        with pytest.raises(ConfigError, match=rf"^trainer.accelerator={accelerator}: this machine has no GPU torch can use "
                                              r"\(torch.cuda.is_available\(\) is False\); expected trainer=cpu, or trainer=ddp_cpu"):
            check_accelerator_present(accelerator)
    for accelerator in ("cpu", "auto", None):
        check_accelerator_present(accelerator)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    check_accelerator_present("gpu"), check_accelerator_present("cuda")


# ------------------------------------------------------------------------------------ trainer options
def trainer_node(**options):
    from omegaconf import OmegaConf

    return OmegaConf.create({"accelerator": "cpu", "devices": 1, "num_nodes": 1, "strategy": "auto", **options})


@pytest.mark.parametrize("options, message", [
    ({"devices": 3}, r"^trainer.devices=3 with trainer.strategy=auto: Lightning would run plain DDP, which a GAN cannot use "
                     r"\(G's parameters get no gradient in D's step\); expected trainer=ddp_cpu trainer.devices=3 "
                     r"\(or trainer.strategy=ddp_find_unused_parameters_true\)$"),
    ({"devices": "2", "strategy": "ddp"}, r"^trainer.devices=2 with trainer.strategy=ddp: .*expected trainer=ddp_cpu trainer.devices=2 "),
    ({"accelerator": "gpu", "devices": [0, 1]}, r"^trainer.devices=\[0, 1\] with trainer.strategy=auto: .*expected trainer=ddp "),
    ({"num_nodes": 2, "strategy": "ddp_spawn"}, r"^trainer.num_nodes=2 with trainer.strategy=ddp_spawn: .*expected trainer=ddp_cpu "
                                                r"trainer.num_nodes=2 \(or trainer.strategy=ddp_find_unused_parameters_true\)$"),
])
def test_several_processes_under_plain_ddp_are_refused_before_building(options, message):
    """Lightning ran plain DDP and every rank failed in the first backward with a traceback (unused parameters)."""
    from gan.utils.instantiate import check_data_parallel_strategy

    with pytest.raises(ConfigError, match=message):
        check_data_parallel_strategy(trainer_node(**options))


def test_sync_batchnorm_on_the_cpu_is_refused_before_the_processes_start():
    """torch's SyncBatchNorm runs on GPUs only: every process raised it after starting (an audit)."""
    from gan.utils.instantiate import check_sync_batchnorm

    with pytest.raises(ConfigError, match=r"^trainer.sync_batchnorm=true on trainer.accelerator=cpu: torch's SyncBatchNorm "
                                          r"runs on GPUs only; expected trainer.sync_batchnorm=false on the CPU"):
        check_sync_batchnorm(trainer_node(devices=2, strategy="ddp_find_unused_parameters_true", sync_batchnorm=True))
    check_sync_batchnorm(trainer_node(sync_batchnorm=False))
    check_sync_batchnorm(trainer_node(accelerator="gpu", sync_batchnorm=True))  # for Lightning and torch to judge on a GPU


def test_the_shipped_ddp_trainers_and_one_process_pass_the_strategy_check():
    from hydra import compose, initialize_config_dir

    from gan.utils.instantiate import check_data_parallel_strategy

    check_data_parallel_strategy(trainer_node())
    check_data_parallel_strategy(trainer_node(devices=3, strategy="ddp_find_unused_parameters_true"))
    check_data_parallel_strategy(trainer_node(devices="auto"))  # one process on the CPU
    with initialize_config_dir(str(PROJECT_ROOT / "conf"), version_base="1.3"):
        for trainer in ("ddp", "ddp_cpu", "cpu", "gpu", "default"):
            check_data_parallel_strategy(compose("train", [f"trainer={trainer}"]).trainer)
        for trainer in ("ddp", "ddp_cpu"):
            check_data_parallel_strategy(compose("train", [f"trainer={trainer}", "trainer.devices=4", "trainer.num_nodes=2"]).trainer)
        with pytest.raises(ConfigError, match=r"^trainer.devices=4 with trainer.strategy=auto: "):
            check_data_parallel_strategy(compose("train", ["trainer=cpu", "trainer.devices=4"]).trainer)


def test_several_nodes_without_a_launcher_are_refused_instead_of_waiting_for_ever(monkeypatch):
    """``trainer.num_nodes=2`` on one machine waited for the other node's processes, which nothing starts (an audit's
    run until its 90 s timeout)."""
    from gan.utils.instantiate import check_other_nodes_are_started

    for name in ("NODE_RANK", "MASTER_ADDR", "SLURM_NTASKS", "SLURM_JOB_NAME", "TORCHELASTIC_RUN_ID", "LSB_JOBID", "JSM_NAMESPACE_SIZE"):
        monkeypatch.delenv(name, raising=False)
    node = trainer_node(num_nodes=2, devices=2, strategy="ddp_find_unused_parameters_true")
    with pytest.raises(ConfigError, match=r"^trainer.num_nodes=2: no cluster launcher \(SLURM's srun, torchrun, LSF, MPI\) "
                                          r"started this process, so nothing starts the other nodes' processes and Lightning "
                                          r"would wait for them for ever; expected trainer.num_nodes=1 on one machine"):
        check_other_nodes_are_started(node)
    check_other_nodes_are_started(trainer_node(devices=2, strategy="ddp_find_unused_parameters_true"))  # one node
    for launched in ({"SLURM_NTASKS": "4", "SLURM_JOB_NAME": "train"}, {"TORCHELASTIC_RUN_ID": "1"}, {"NODE_RANK": "0"},
                     {"MASTER_ADDR": "10.0.0.1"}):  # srun, torchrun, a hand start on each node
        with monkeypatch.context() as patched:
            for name, value in launched.items():
                patched.setenv(name, value)
            check_other_nodes_are_started(node)


def test_a_validation_interval_is_refused():
    """``+trainer.val_check_interval=2`` was accepted and did nothing: there is no validation loop."""
    from gan.utils.instantiate import check_no_validation_options

    with pytest.raises(ConfigError, match=r"^trainer.val_check_interval=2: this framework runs no validation loop; metrics are "
                                          r"scored every metrics.every_n_generator_steps generator steps \(set that instead\)$"):
        check_no_validation_options(trainer_node(val_check_interval=2))
    check_no_validation_options(trainer_node())
    # nor a minimum length: Lightning honoured no stop before an epoch ended, and the data is one endless epoch
    for option, value in (("min_steps", 16), ("min_epochs", 1)):
        with pytest.raises(ConfigError, match=rf"^trainer.{option}={value}: Lightning would honour no early stop \(a health "
                                              r"check's action=stop, trainer.max_time\) before the first epoch ends"):
            check_no_validation_options(trainer_node(**{option: value}))


@pytest.mark.parametrize("value", [0, -1, "abc", 1.5])
def test_a_logging_interval_below_one_is_refused(value):
    """0 logged nothing at all and -1 every iteration, both without a word."""
    from omegaconf import OmegaConf

    from gan.utils.config import check_log_interval

    with pytest.raises(ConfigError, match=rf"^trainer.log_every_n_steps={value} is not valid: expected an integer >= 1 "
                                          r"\(logger=none for no logging\)$"):
        check_log_interval(OmegaConf.create({"trainer": {"log_every_n_steps": value}}))
    for fine in (1, 50, None):
        check_log_interval(OmegaConf.create({"trainer": {"log_every_n_steps": fine}}))


def test_a_group_choice_that_is_not_a_name_is_described_in_one_line():
    from hydra import initialize_config_dir

    from gan.utils.errors import GROUP_OVERRIDE_REFUSED, describe_group_choice_error

    refused = ValueError(f"{GROUP_OVERRIDE_REFUSED}. Got NoneType")
    with initialize_config_dir(str(PROJECT_ROOT / "conf"), version_base="1.3"):
        assert describe_group_choice_error(refused, ["model=dcgan", "seed=3", "presets=null"]) == \
            "presets=null: expected one of none, tuned (the name of a presets config)"
        assert describe_group_choice_error(refused, ["-m", "loss=3"]).startswith("loss=3: expected one of hinge, least_squares, ")


@pytest.mark.parametrize("overrides, message", [
    # r3gan's digits preset sets the DCGAN networks over arch=resnet's, whose ResNet-only options stayed: Hydra's
    # multi-line TypeError, status 1 (found by an audit)
    (["arch=resnet"], r"^model.discriminator: DCGANDiscriminator takes no option extra_blocks, feature_size, "
                                     r"pooling \(a TypeError when it is built\); options of another network family stay "
                                     r"when a later config swaps the class: model=\.\.\., arch=\.\.\. and the per-data "
                                     r"preset set the networks in that order \(presets=none leaves the preset's out\)$"),
    # model=gan's MLP option under arch=resnet, with presets=none given: it was told to add presets=none (a README
    # walk-through)
    (["model=gan", "arch=resnet", "presets=none"], r"^model.generator: ResNetGenerator takes no option hidden \(a "
                                                   r"TypeError when it is built\); options of another network family stay "
                                                   r"when a later config swaps the class: model=\.\.\., arch"),
    (["presets=none", "+model.discriminator.pooling=mean"], r"^model.discriminator: DCGANDiscriminator takes no option pooling"),
    # a typo: it got the hint about network families (a second audit)
    (["+model.generator.widht=8"], r"^model.generator: DCGANGenerator takes no option widht \(a TypeError when it is "
                                   r"built\); did you mean width\?; options of another network family stay when"),
])
def test_an_option_the_target_does_not_take_is_one_line(make_cfg, overrides, message):
    from train import train

    chosen = [o.partition("=")[2] for o in overrides if o.startswith("model=")]
    model = chosen[0] if chosen else "r3gan" if "arch=resnet" in overrides else "dcgan"
    with pytest.raises(ConfigError, match=message):
        train(make_cfg(tiny_overrides(model, steps=1) + [o for o in overrides if not o.startswith("model=")]))


@pytest.mark.parametrize("overrides, message", [
    # each was dropped without a word (the grids, the CSV log, an added callback) ...
    (["callbacks.sample_grid=5"], r"callbacks.sample_grid=5: expected a callback's config \(a mapping with _target_\), or "
                                  r"null to leave it out"),
    (["logger=csv", "logger.csv=5"], r"logger.csv=5: expected a logger's config \(a mapping with _target_\), or null"),
    (["+model.schedules.foo.value.start=0.1"], r"model.schedules.foo=\{'value': \{'start': 0.1\}\}: expected a "
                                              r"schedule's config .*; an experiment or per-data preset written for "
                                              r"another model sets part of an entry this one does not have\?"),
    (["+metrics.num_sample=500"], r"metrics.num_sample is not a metrics option \(nothing would read it\); did you mean "
                                  r"metrics.num_samples\?; expected one of batch_size, .*, seed \(a metric is chosen with"),
    # ... or ended in a traceback from Hydra or a check (an audit)
    (["optimizer.generator=null"], r"optimizer.generator=null: expected an optimizer's config \(a mapping with _target_\); "
                                   r"each network needs one"),
    (["+optimizer.foo=1"], r"optimizer.foo=1: expected an optimizer's config"),
    (["+model.penalties.foo=1"], r"model.penalties.foo=1: expected a penalty's config"),
    (["+loss.foo=1"], r"loss: RelativisticLoss takes no option foo \(a TypeError when it is built\)"),
])
def test_an_entry_nothing_would_read_or_build_is_one_line(make_cfg, overrides, message):
    from train import train

    with pytest.raises(ConfigError, match=rf"^{message}"):
        train(make_cfg(tiny_overrides("r3gan", "toy2d_ring", steps=1) + overrides))


@pytest.mark.parametrize("network, cls", [("generator", "DCGANGenerator"), ("discriminator", "DCGANDiscriminator")])
def test_a_network_built_for_another_data_shape_is_refused_before_training(make_cfg, tmp_path, network, cls):
    """The discriminator's shape was checked only at its first batch, after training had started (a README
    walk-through); both networks are now checked against the data before fit."""
    from train import train

    cfg = make_cfg(tiny_overrides("dcgan", "digits", steps=1) + [f"model.{network}.sample_shape=[1,32,32]"])
    with pytest.raises(ConfigError, match=rf"^data digits yields samples of shape \[1, 28, 28\] but the {network} "
                                          rf"\({cls}\) was built for \[1, 32, 32\]$"):
        train(cfg)
    assert not (Path(cfg.paths.output_dir) / "checkpoints").exists()


def test_the_shipped_groups_of_objects_and_metrics_options_pass_the_checks(make_cfg):
    """The checks above refuse none of the shipped choices; a null entry leaves its object out."""
    from gan.utils.config import check_groups_of_objects, check_metrics_options
    from gan.utils.option_types import accepted_options

    # a toy preset sets the grid's interval, which callbacks=none leaves without its callback: not built, not refused
    # (a review found the first version of the check refusing every toy run with callbacks=none)
    for overrides in (["callbacks=default", "logger=csv"], ["logger=wandb"], ["logger=tensorboard"], ["callbacks=none"],
                      ["model=dcgan", "data=toy2d_ring", "callbacks=none"],
                      ["model=wgan_gp", "callbacks.sample_grid=null"], ["+metrics.compute.kid={}", "metrics=[fid,kid]"]):
        cfg = make_cfg(overrides)
        check_groups_of_objects(cfg)
        check_metrics_options(cfg)
    check_metrics_options(make_cfg(["metrics=[fid,kid]"], config_name="evaluate"))
    # a class no __init__ of which is its own takes no option; one whose **kwargs reaches object may keep them
    assert accepted_options("gan.losses.RelativisticLoss") == set()
    assert accepted_options(type("KeepsAll", (), {"__init__": lambda self, a, **kwargs: None})) is None
    # options taken by __new__ (a review: timedelta's minutes were refused by the first version); not pathlib.Path,
    # whose __init__ takes no keyword from Python 3.12 on (a Python-versions audit)
    from typing import NamedTuple

    point = NamedTuple("Point", [("x", int)])
    assert accepted_options("datetime.timedelta") is None and accepted_options(point) is None


def test_a_top_level_key_added_that_nothing_reads_is_said(make_cfg):
    """``+n_critic=5`` trained with model.n_critic unchanged, without a word (an audit): a warning, since a key added
    to label runs is kept in the config and W&B's."""
    from omegaconf import OmegaConf

    from gan.utils.config import top_level_keys_nothing_reads

    overrides = ["+n_critic=5", "+study=ablation", "+lr=0.001", "optimizer.generator.lr=${lr}", "++seed=3",
                 "+model.foo_bar=1", "+beta=0.5", "optimizer.discriminator.lr=${oc.select:beta,0.1}", "+failed_trial_value=-1",
                 "+where=x"]
    cfg = make_cfg(overrides)
    hydra_cfg = OmegaConf.create({"run": {"dir": "runs/${where}"}})  # read by Hydra's own config (a review)
    assert top_level_keys_nothing_reads(cfg, [*overrides, "+hparams_search=optuna"], hydra_cfg=hydra_cfg) == [
        "+n_critic=5 adds a top-level key that nothing reads (kept in the run's config; labels for runs go in tags=[...]); "
        "did you mean model.n_critic?",
        "+study=ablation adds a top-level key that nothing reads (kept in the run's config; labels for runs go in tags=[...])",
    ]  # +lr, +beta and +where are interpolated, ++ may override, a nested key is its object's to check, +hparams_search
    # is a group, and train.py reads failed_trial_value
    evaluate_cfg = make_cfg(["+num_sample=5"], config_name="evaluate")  # evaluate.py's main says it too
    assert top_level_keys_nothing_reads(evaluate_cfg, ["+num_sample=5"], labels=None) == [
        "+num_sample=5 adds a top-level key that nothing reads (kept in the config); did you mean num_samples?"]


def test_r3gans_beta2_schedule_under_an_optimizer_without_betas_names_the_way_out(make_cfg):
    """It said "schedule beta2: the generator optimizer has no betas", naming neither the key nor what to do (an audit)."""
    from train import train

    with pytest.raises(ConfigError, match=r"^model.schedules.beta2 sets beta2 of the generator optimizer, but RMSprop has no "
                                          r"betas; expected an optimizer with betas \(Adam\), or model.schedules.beta2=null$"):
        train(make_cfg(tiny_overrides("r3gan", "toy2d_ring", steps=1) + ["presets=none", "optimizer=rmsprop_wgan"]))


@pytest.mark.parametrize("hyperparameter, what", [
    ("foo", "has no such hyperparameter"),
    ("momentum", "has no such hyperparameter"),  # SGD's, under Adam
    ("betas", r"has it as \(0\.\d+, 0\.\d+\), not a number"),  # a float unpacked as betas was torch's TypeError
    ("amsgrad", "has it as False, not a number"),  # a flag: it trained on, set to 0.5, without a word
])
def test_a_schedule_of_a_hyperparameter_the_optimizer_lacks_is_refused_when_the_module_is_built(make_cfg, hyperparameter, what):
    """It failed at the first training step, after the loggers had started (a W&B run written), on the progress bar's
    line and naming the hyperparameter, not the key; betas and flags failed as a traceback or not at all (an audit)."""
    from gan.utils.instantiate import build_module

    schedule = f"+model.schedules.s={{_target_:gan.schedules.OptimizerSetting,hyperparameter:{hyperparameter},value:0.5}}"
    cfg = make_cfg(tiny_overrides("dcgan", steps=1) + [schedule])
    with pytest.raises(ConfigError, match=rf"^model\.schedules\.s: hyperparameter={hyperparameter}: the generator optimizer "
                                          rf"\(Adam\) {what}; expected one of \['beta1', 'beta2', 'eps', 'lr', 'weight_decay'\]$"):
        build_module(cfg)


def test_a_preset_option_the_command_line_removed_is_not_refused(make_cfg):
    """The preset-vs-chosen-optimizer check reads the composed config: an option removed with ~ is not there (a review)."""
    from gan.utils.config import check_preset_fits_choices

    cfg = make_cfg(["model=dcgan", "optimizer=rmsprop_wgan", "logger=none"])
    with pytest.raises(ConfigError, match=r"^optimizer=rmsprop_wgan: the per-data preset tuned/dcgan/digits sets "
                                          r"optimizer.discriminator.betas, which RMSprop does not take"):
        check_preset_fits_choices(cfg, "tuned/dcgan/digits", ["optimizer=rmsprop_wgan"])
    removed = make_cfg(["model=dcgan", "optimizer=rmsprop_wgan", "logger=none", "~optimizer.discriminator.betas",
                        "~optimizer.generator.betas"])
    check_preset_fits_choices(removed, "tuned/dcgan/digits", ["optimizer=rmsprop_wgan"])


def test_an_interpolation_to_an_option_set_to_null_is_one_line():
    """r3gan's model.penalties.r1r2.gamma reads ${model.schedules.gamma.value.start}: model.schedules.gamma=null alone
    was OmegaConf's traceback. A resolver's own exception is a bug and keeps its traceback."""
    from omegaconf import OmegaConf

    from gan.utils.errors import user_error_behind

    cfg = OmegaConf.create({"schedules": {"gamma": None}, "penalties": {"r1r2": {"gamma": "${schedules.gamma.value.start}"}},
                            "other": "${nowhere}", "broken": "${oc.decode:'[1,'}"})
    errors = {}
    for key in ("penalties.r1r2.gamma", "other", "broken"):
        try:
            OmegaConf.select(cfg, key)
        except Exception as error:  # noqa: BLE001 - what train.py's entry point catches
            errors[key] = error
    said = user_error_behind(errors["penalties.r1r2.gamma"])
    assert isinstance(said, ConfigError) and str(said) == (
        "penalties.r1r2.gamma cannot be resolved: Error trying to access schedules.gamma.value.start: node "
        "`schedules.gamma` is not a container and thus cannot contain `value`; expected the option it refers to to hold "
        "a value, or a value of its own (penalties.r1r2.gamma=<value>)")
    assert str(user_error_behind(errors["other"])).startswith("other cannot be resolved: Interpolation key 'nowhere' not found;")
    assert user_error_behind(errors["broken"]) is None


def test_an_allocation_the_machine_cannot_make_is_one_line_naming_the_sizes(capsys):
    from hydra.errors import InstantiationException

    from gan.utils.errors import OutOfMemory

    try:  # torch's own refusal, as a width of 1e12 met it in the first layer (an audit: a traceback, status 1)
        torch.empty(2**60, dtype=torch.uint8)
    except RuntimeError as error:
        refused = error
    cases = [(refused, r"an allocation of 1,048,576.0 TiB failed"),
             (MemoryError(), r"MemoryError"),  # Python's: the loader's list of 1e12 indices
             (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"), r"CUDA out of memory. Tried to allocate 20.00 GiB")]
    for error, said in cases:
        wrapped = InstantiationException("Error in call to target 'gan.nets.DCGANGenerator'")
        wrapped.__cause__ = error
        for raised in (error, wrapped):
            found = user_error_behind(raised)
            assert isinstance(found, OutOfMemory) and found.exit_status == 2
            assert re.fullmatch(rf"out of memory \({said}\); expected sizes that fit this machine's memory: lower "
                                r"data\.batch_size, model\.n_critic, .*metrics\.batch_size \(or a larger machine\)", str(found))
    assert user_error_behind(RuntimeError("mat1 and mat2 shapes cannot be multiplied")) is None  # a bug keeps its traceback

    @exit_on_user_error
    def task():
        torch.empty(2**60, dtype=torch.uint8)

    with pytest.raises(SystemExit) as stopped:
        task()
    assert stopped.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: out of memory (an allocation of ")


@pytest.mark.parametrize("arguments,message", [
    (["-m", "model=gan,dcgan", "seed=-1"], None),  # Hydra's own flags, a negative value
    (["--cfg", "job", "--resolve"], None),
    (["--multirun", "+x=1", "~y"], None),
    (["model=gan", "--seed=3"], "--seed=3: options are Hydra overrides, written key=value without dashes; expected seed=3"),
    (["--data-dir", "/d", "model=gan"], "--data-dir: options are Hydra overrides, written key=value without dashes; "
                                        "expected data_dir=/d"),
    (["--fast", "model=gan"], "--fast: options are Hydra overrides, written key=value without dashes; expected fast=<value>"),
])
def test_dashed_overrides_are_one_line_naming_the_hydra_form(arguments, message, capsys):
    from gan.utils.errors import refuse_dashed_overrides

    if message is None:
        refuse_dashed_overrides(arguments)
        assert capsys.readouterr().err == ""
        return
    with pytest.raises(SystemExit) as exited:
        refuse_dashed_overrides(arguments)
    assert exited.value.code == 2 and capsys.readouterr().err == f"error: {message}\n"


def test_every_training_only_group_is_absent_from_evaluate_s_config_and_present_in_train_s():
    """The groups evaluate.py refuses are those a checkpoint fixes: none may be an option evaluate.py reads."""
    from omegaconf import OmegaConf

    from gan.utils.errors import TRAINING_ONLY_GROUPS, refuse_training_options

    evaluate_keys = set(OmegaConf.load(PROJECT_ROOT / "conf" / "evaluate.yaml")) | {"paths", "hydra", "data", "metrics"}
    assert not evaluate_keys & set(TRAINING_ONLY_GROUPS)
    conf = PROJECT_ROOT / "conf"
    assert all((conf / group).is_dir() for group in TRAINING_ONLY_GROUPS)
    refuse_training_options(["ckpt_path=x.ckpt", "data=digits", "metrics=[fid]", "metrics.num_real=10", "seeds=[0,1]"])
    for argument in ["loss=hinge", "trainer.devices=2", "++callbacks.x=1", "~logger"]:
        with pytest.raises(SystemExit):
            refuse_training_options([argument if "=" in argument else argument + "=null"])


def test_a_ddp_rank_past_0_says_its_data_and_checkpoint_errors_but_not_the_shared_ones(capsys, monkeypatch):
    """Rank 0 alone says a configuration error or a divergence (every rank has the same); a data or checkpoint
    error may be one rank's own, so that rank says it (a mutation audit: it exited 2 without a word)."""
    from gan.utils import distributed
    from gan.utils.errors import DataError, TrainingDiverged

    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setattr(distributed, "is_rank_zero", lambda: False)

    @exit_on_user_error
    def task(error):
        raise error

    for error, said in [(DataError("shard 3 is truncated"), "error: shard 3 is truncated\n"),
                        (CheckpointError("cannot read x.ckpt"), "error: cannot read x.ckpt\n"),
                        (ConfigError("model.n_critic must be a positive integer, got 0"), ""),
                        (TrainingDiverged("training diverged: at step 3"), "")]:
        with pytest.raises(SystemExit) as exited:
            task(error)
        assert exited.value.code == error.exit_status and capsys.readouterr().err == said
