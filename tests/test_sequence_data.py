"""The .ts reader (hand-written files), the UEA/UCR sets, Fashion-MNIST rows and the Reber grammar."""
import numpy as np
import pytest

from zoo import data
from zoo.data.sequences import (corrupt, embedded_reber_string, is_embedded_reber, is_reber, pad, reber_string,
                                ts_classification)
from zoo.data.ts_format import read_ts
from zoo.errors import UserError

TOY = """# a hand-written problem
@problemName Toy
@timeStamps false
@missing true
@univariate false
@dimensions 2
@equalLength false
@classLabel true up down
@data
1,2,3:4,5,6:up
7,?:9,10:down
0.5:-1.5:up
"""


def write(tmp_path, text, name="Toy_TRAIN.ts"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_reads_a_hand_written_file(tmp_path):
    ts = read_ts(write(tmp_path, TOY))
    assert ts.problem_name == "Toy" and ts.dimensions == 2 and ts.class_names == ["up", "down"]
    assert ts.labels == ["up", "down", "up"]
    assert ts.lengths.tolist() == [3, 2, 1]
    np.testing.assert_array_equal(ts.series[0], [[1, 4], [2, 5], [3, 6]])  # (steps, dimensions)
    assert np.isnan(ts.series[1][1, 0]) and ts.series[1][1, 1] == 10
    np.testing.assert_array_equal(ts.series[2], [[0.5, -1.5]])


@pytest.mark.parametrize("bad, message", [
    ("1,2,3:4,5,6:up\n1,2,3:down\n", "line 11: 1 dimensions, but the file declares or began with 2 "),
    ("1,2,3:4,5,6:4,5,6:up\n", "3 dimensions"),
    ("1,2,3:4,5:up\n", "different lengths"),
    ("1,2:3,4:sideways\n", "class label 'sideways' is not declared"),
    ("1,x:3,4:up\n", "not a number"),
])
def test_inconsistent_files_are_clear_errors(tmp_path, bad, message):
    head = TOY.split("@data\n")[0] + "@data\n"
    text = head + bad
    with pytest.raises(UserError, match=message):
        read_ts(write(tmp_path, text))


def test_equal_length_declared_but_violated(tmp_path):
    text = TOY.replace("@equalLength false", "@equalLength true").split("@data\n")[0] + "@data\n1,2:3,4:up\n1:2:down\n"
    with pytest.raises(UserError, match="@equalLength true"):
        read_ts(write(tmp_path, text))


@pytest.fixture
def toy_problem(tmp_path, monkeypatch):
    """A problem folder Toy/ with TRAIN and TEST files, found through $ZOO_TS_DATA_DIR."""
    folder = tmp_path / "Toy"
    folder.mkdir()
    write(folder, TOY, "Toy_TRAIN.ts")
    write(folder, TOY, "Toy_TEST.ts")
    monkeypatch.setenv("ZOO_TS_DATA_DIR", str(tmp_path))


def test_unknown_problem_lists_what_exists(toy_problem):
    with pytest.raises(UserError) as error:
        data.load("ts_classification", problem="Qwertyuiop")
    assert "Toy" in str(error.value) and "JapaneseVowels" in str(error.value)


def test_a_ts_problem_becomes_padded_masked_columns(toy_problem):
    raw = ts_classification("Toy", normalize=False)["train"].with_format("numpy")[:]
    assert raw["input_features"].shape == (3, 3, 2)
    np.testing.assert_array_equal(raw["attention_mask"], [[1, 1, 1], [1, 1, 0], [1, 0, 0]])
    np.testing.assert_array_equal(raw["input_features"][1], [[7, 9], [0, 10], [0, 0]])  # ? -> 0, padding 0
    assert raw["labels"].tolist() == [0, 1, 0] and raw["length"].tolist() == [3, 2, 1]
    normal = ts_classification("Toy")["train"].with_format("numpy")[:]
    values = np.array([1, 2, 3, 7, 0.5])  # channel 0's real, non-missing training values
    assert normal["input_features"][0, 0, 0] == pytest.approx((1 - values.mean()) / values.std(), rel=1e-5)
    with pytest.raises(UserError, match="longer than max_length=2"):
        ts_classification("Toy", max_length=2)


def test_bundled_uea_sets():
    vowels = data.load("japanese_vowels")
    assert len(vowels["train"]) == 270 and len(vowels["test"]) == 370
    train = vowels["train"].with_format("numpy")[:]
    assert train["input_features"].shape[1:] == (29, 12)
    lengths = train["attention_mask"].sum(1)
    assert lengths.min() >= 7 and lengths.max() <= 29 and len(set(lengths.tolist())) > 5  # variable lengths kept
    assert np.all(train["input_features"][train["attention_mask"] == 0] == 0)
    motions = data.load("basic_motions", split="test")
    assert motions.features["labels"].names == ["Standing", "Running", "Walking", "Badminton"]
    assert tuple(motions[0]["input_features"].shape) == (100, 6)


def test_fashion_mnist_rows_are_the_images_rows():
    from zoo.data.images import _fashion_mnist_dir, _read_idx

    rows = data.load("fashion_mnist_rows", limit_train=5, limit_test=3)
    folder = _fashion_mnist_dir()
    images = _read_idx(folder / "t10k-images-idx3-ubyte.gz")[:3] / 255.0  # (N, 28, 28): row t is step t
    assert rows["train"][:]["input_features"].shape == (5, 28, 28)
    np.testing.assert_allclose(rows["test"][:]["input_features"].numpy(), images, rtol=1e-6)
    assert rows["test"][:]["labels"].tolist() == _read_idx(folder / "t10k-labels-idx1-ubyte.gz")[:3].tolist()
    assert rows["train"][:]["attention_mask"].all()


def test_reber_strings_follow_the_grammar():
    rng = np.random.default_rng(0)
    for _ in range(200):
        s, e = reber_string(rng), embedded_reber_string(rng)
        assert is_reber(s) and is_embedded_reber(e) and e[1] == e[-2]
        assert not is_embedded_reber(corrupt(e, True, rng)) and not is_reber(corrupt(s, False, rng))
    # the grammar's graph, independently: these are in it, these are not
    assert is_reber("BTXSE") and is_reber("BPVVE") and is_reber("BTSSXXTVVE") and is_reber("BPTVPSE")
    assert not is_reber("BTSSPXSE") and not is_reber("BPTVVB") and not is_reber("BTXXVVSE")


def test_reber_data_set():
    ds = data.load("reber", n_train=40, n_test=20, max_length=30, seed=1)
    train = ds["train"].with_format("numpy")[:]
    assert train["labels"].sum() == 20  # balanced
    for text, label, x, mask in zip(train["text"], train["labels"], train["input_features"], train["attention_mask"]):
        assert is_embedded_reber(text) == bool(label) and mask.sum() == len(text) <= 30
        assert "".join("BTSXPVE"[i] for i in x[: len(text)].argmax(1)) == text and not x[len(text):].any()
    with pytest.raises(UserError, match="max_length"):
        data.load("reber", max_length=5)


def test_pad():
    x, mask = pad([np.ones((2, 1)), np.ones((3, 1))], 4)
    assert x.shape == (2, 4, 1) and mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 0]]
