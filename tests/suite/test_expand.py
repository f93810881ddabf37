"""Sweep expansion: the cartesian product, readable ids, stable content keys, device-neutral seeds."""

from imgx.suite import expand, load_suite
from tests.helpers import write_suite

EDIT = """
suite: s
seed: 7
defaults: {device: [cpu, cuda]}
cases:
  - id: edit
    task: edit
    model: {name: instruct-pix2pix, weights: tiny}
    data: {name: photos, image_size: 32, count: 1}
    prompts: ["make it snow"]
    sweep:
      image_guidance_scale: [1.0, 1.5, 2.0]
      scheduler: [ddim, euler]
"""


def test_cartesian_product_with_readable_ids(tmp_path):
    cases = expand(load_suite(write_suite(tmp_path, EDIT)))
    assert len(cases) == 2 * 3 * 2
    assert cases[0].id == "edit[device=cpu,image_guidance_scale=1.0,scheduler=ddim]"
    assert len({c.id for c in cases}) == len(cases)
    assert len({c.key for c in cases}) == len(cases)
    assert {c.spec.inference.scheduler for c in cases} == {"ddim", "euler"}
    assert [c.index for c in cases] == list(range(len(cases)))
    assert all("gpu" in c.marks for c in cases if c.device == "cuda")


def test_keys_are_stable_and_follow_the_configuration(tmp_path):
    a = expand(load_suite(write_suite(tmp_path, EDIT)))
    b = expand(load_suite(write_suite(tmp_path, EDIT)))
    assert [c.key for c in a] == [c.key for c in b]
    c = expand(load_suite(write_suite(tmp_path, EDIT.replace("make it snow", "make it rain"))))
    assert not {x.key for x in a} & {x.key for x in c}


def test_seeds_are_derived_and_device_neutral(tmp_path):
    cases = expand(load_suite(write_suite(tmp_path, EDIT)))
    assert len({c.seed for c in cases}) == 1  # same noise across devices and guidance values, for comparisons
    other = expand(load_suite(write_suite(tmp_path, EDIT.replace("seed: 7", "seed: 8"))))
    assert other[0].seed != cases[0].seed
    swept = expand(load_suite(write_suite(tmp_path, EDIT.replace("scheduler: [ddim, euler]", "seed: [0, 1, 2]"))))
    assert len({c.seed for c in swept}) == 3
    assert swept[0].id.endswith("seed=0]")
