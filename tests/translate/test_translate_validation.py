"""Bad translate input is refused by ``imgx validate`` (exit 2) with file, line and field, before anything runs."""

import subprocess
import sys

import pytest
from PIL import Image

from imgx.errors import SuiteError
from imgx.suite import expand, load_suite
from tests.helpers import write_suite

PIX2PIX = """suite: s
cases:
  - id: p
    task: translate
    model: {name: pix2pix}
    data: {name: photo-pairs, pair: edges, image_size: 32}
    train: {epochs: 1, batch_size: 16, lr: 2.0e-4}
    metrics: [mse, ssim]
"""
CYCLEGAN = """suite: s
cases:
  - id: c
    task: translate
    model: {name: cyclegan}
    data: {name: photo-styles, style: sepia, image_size: 32}
    metrics: [target_ssim]
"""


def _problems(tmp_path, text: str) -> tuple[str, list[str]]:
    path = write_suite(tmp_path, text)
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    return str(path), info.value.problems()


BAD = [
    (PIX2PIX.replace("pair: edges", "pair: edgse"), 6,
     "cases[0].data.pair: unknown pair 'edgse'; did you mean 'edges'?"),
    (CYCLEGAN.replace("style: sepia", "style: sepai"), 6,
     "cases[0].data.style: unknown style 'sepai'; did you mean 'sepia'?"),
    (PIX2PIX.replace("image_size: 32", "image_size: 48"), 6,
     "cases[0].data.image_size: image_size 48 cannot be halved cleanly by pix2pix's depth 5: use a multiple of 32"),
    (PIX2PIX.replace("{name: pix2pix}", "{name: pix2pix, depth: 3}").replace("image_size: 32", "image_size: 20"), 6,
     "image_size 20 cannot be halved cleanly by pix2pix's depth 3: use a multiple of 8"),
    (CYCLEGAN.replace("image_size: 32", "image_size: 30"), 6, "cannot be halved cleanly by cyclegan's 2 halvings"),
    (CYCLEGAN + "    sweep: {loss: [l1, gan]}\n", 8, "cases[0].sweep.loss: sweep axis 'loss': model 'cyclegan' takes "
                                                    "no option 'loss'"),
    (PIX2PIX + "    sweep: {loss: [l1, l2]}\n", 9, "cases[0].sweep.loss[1]: Input should be 'l1', 'gan' or 'l1+gan'"),
    (PIX2PIX + "    sweep: {image_size: [32, 40]}\n", 9,
     "cases[0].sweep.image_size[1]: image_size 40 cannot be halved"),
    (CYCLEGAN.replace("cyclegan}", "pix2pix}"), 6, "model 'pix2pix' trains on pairs; data set 'photo-styles' is "
                                                   "unpaired"),
    (PIX2PIX.replace("pair: edges, ", ""), 6, "cases[0].data.pair: data set 'photo-pairs' needs a pair"),
    (PIX2PIX.replace("task: translate", "task: colorize").replace("pix2pix", "encoder-decoder"), 6,
     "colorize reads photo-pairs only with pair: gray, not 'edges'"),
    (CYCLEGAN.replace("{name: cyclegan}", "{name: cyclegan, loss: l1}"), 5,
     "cases[0].model.loss: model 'cyclegan' takes no option 'loss'"),
    (PIX2PIX.replace("{name: pix2pix}", "{name: pix2pix, lambda_identity: 5}"), 5,
     "cases[0].model.lambda_identity: model 'pix2pix' takes no option 'lambda_identity'"),
    (PIX2PIX + "    sweep: {lambda_cycle: [1, 10]}\n", 9, "cases[0].sweep.lambda_cycle: sweep axis 'lambda_cycle': "
                                                          "model 'pix2pix' takes no option 'lambda_cycle'"),
    (CYCLEGAN.replace("{name: cyclegan}", "{name: cyclegan, lambda_identity: -1}"), 5,
     "cases[0].model.lambda_identity: Input should be greater than or equal to 0"),
]


@pytest.mark.parametrize(("text", "line", "fragment"), BAD)
def test_bad_translate_suites_name_file_line_and_field(tmp_path, text, line, fragment):
    path, problems = _problems(tmp_path, text)
    assert any(p.startswith(f"{path}:{line}: ") and fragment in p for p in problems), problems


def _pairs(root, a_names, b_names):
    for side, names in (("a", a_names), ("b", b_names)):
        (root / side).mkdir(parents=True)
        for n in names:
            Image.new("RGB", (8, 8), (10, 20, 30)).save(root / side / n)


def test_folder_pairs_with_unmatched_names_exit_2_naming_the_files(tmp_path):
    root = tmp_path / "pairs"
    _pairs(root, ["cat.png", "dog.png", "owl.png"], ["cat.jpg", "dog.png", "emu.png"])
    path = write_suite(tmp_path, PIX2PIX.replace("{name: photo-pairs, pair: edges, image_size: 32}",
                                                 f"{{name: folder-pairs, path: '{root}'}}"))
    proc = subprocess.run([sys.executable, "-m", "imgx", "validate", str(path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{path}:6: cases[0].data.path: {root}: 1 file(s) in a/ have no namesake in b/: owl.png" in proc.stderr
    assert f"{path}:6: cases[0].data.path: {root}: 1 file(s) in b/ have no namesake in a/: emu.png" in proc.stderr


def test_folder_pairs_matched_by_name_validate(tmp_path):
    root = tmp_path / "pairs"
    _pairs(root, ["cat.png", "dog.png"], ["cat.jpg", "dog.png"])
    text = PIX2PIX.replace("{name: photo-pairs, pair: edges, image_size: 32}",
                           f"{{name: folder-pairs, path: '{root}'}}")
    assert expand(load_suite(write_suite(tmp_path, text)))


def test_loss_axis_expands_to_one_case_per_loss(tmp_path):
    cases = expand(load_suite(write_suite(tmp_path, PIX2PIX + "    sweep: {loss: [l1, gan, l1+gan]}\n")))
    assert [c.id for c in cases] == ["p[loss=l1]", "p[loss=gan]", "p[loss=l1+gan]"]
    assert [c.spec.model.loss for c in cases] == ["l1", "gan", "l1+gan"]
