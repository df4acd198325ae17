"""The shipped digit classifier: its held-out accuracy, and that its script reproduces it."""
from __future__ import annotations

import pytest
import torch

from gan.metrics import digit_classifier as dc


def test_shipped_weights_reach_the_stated_held_out_accuracy(data_dir):
    model = dc.load_classifier()
    accuracy = dc.held_out_accuracy(model, data_dir)
    assert accuracy >= dc.STATED_TEST_ACCURACY
    assert accuracy == pytest.approx(torch.load(dc.WEIGHTS_PATH, weights_only=True)["held_out_accuracy"])
    assert dc.WEIGHTS_PATH.stat().st_size < 1_000_000


def test_held_out_split_is_balanced_and_disjoint(data_dir):
    from gan.data.digits import load_digits_array

    (x_train, y_train), (x_test, y_test) = dc.split(*load_digits_array(data_dir))
    assert len(x_test) == 1000 and len(x_train) == 4000
    assert torch.bincount(y_test, minlength=10).tolist() == [100] * 10
    flat_train = {bytes(row.numpy().tobytes()) for row in x_train.flatten(1)}
    assert sum(bytes(row.numpy().tobytes()) in flat_train for row in x_test.flatten(1)) < 5  # MNIST has a few duplicates


def test_wrong_image_size_names_both_shapes():
    with pytest.raises(ValueError, match=r"\[1, 28, 28\].*\[1, 32, 32\]"):
        dc.load_classifier()(torch.zeros(2, 1, 32, 32))


@pytest.mark.slow
def test_training_script_reproduces_the_shipped_accuracy(tmp_path, data_dir):
    out = tmp_path / "classifier.pt"
    accuracy = dc.main(["--root", str(data_dir), "--out", str(out)])
    shipped = torch.load(dc.WEIGHTS_PATH, weights_only=True)["held_out_accuracy"]
    assert accuracy >= dc.STATED_TEST_ACCURACY
    # bit-identical on the machine that trained them; other CPUs may round differently, hence the tolerance
    assert abs(accuracy - shipped) <= 0.005
    assert dc.held_out_accuracy(dc.load_classifier(out), data_dir) == accuracy


def test_the_script_does_not_overwrite_the_shipped_weights_unless_asked(capsys):
    """Its default --out was the shipped file: a rebuild on another torch build replaced the reference weights (and
    every fid_digits value) without a word (a README walk-through). Refused before any training, the file unchanged."""
    before = dc.WEIGHTS_PATH.read_bytes()
    with pytest.raises(SystemExit) as refused:
        dc.main(["--out", str(dc.WEIGHTS_PATH)])
    assert refused.value.code == 2 and dc.WEIGHTS_PATH.read_bytes() == before
    assert capsys.readouterr().err == (f"error: --out={dc.WEIGHTS_PATH} is the shipped digit classifier, the reference of "
                                       "every fid_digits value; expected another file, or --replace-shipped to replace it "
                                       "on purpose\n")
    with pytest.raises(SystemExit) as no_out:
        dc.main([])
    assert no_out.value.code == 2


def test_saved_weights_load_weights_only_and_record_the_torch_build(tmp_path):
    """The torch version is saved as a plain str: torch.__version__ itself (a TorchVersion) made the file unreadable
    by the weights-only load (caught by the slow rebuild test)."""
    model = dc.DigitClassifier()
    dc.save_classifier(model, tmp_path / "classifier.pt", 0.5)
    saved = torch.load(tmp_path / "classifier.pt", weights_only=True)
    assert saved["torch"] == str(torch.__version__) and type(saved["torch"]) is str and saved["held_out_accuracy"] == 0.5
    loaded = dc.load_classifier(tmp_path / "classifier.pt")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
