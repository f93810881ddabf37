"""Models of a third-party package (tests/thirdparty/imgx_demo_models), by entry point and by import path,
through ``imgx validate`` / ``imgx run`` as a user runs them: colorizers, editors, a text-to-image callable, a GAN,
checkpoints, and every kind of bad model (exit 2 before the run, or the case ``failed`` with the reason)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from tests.helpers import write_suite
from tests.models.common import PHOTOS, imgx, results, value

pytestmark = pytest.mark.usefixtures("demo_models")
EDITS = "{name: photo-edits, image_size: 16, test: 2}"


def _case(case_id: str, model: str, task: str = "colorize", data: str = PHOTOS, metrics: str = "[mse, psnr, ssim]",
          extra: str = "") -> str:
    train = "    train: {epochs: 1, batch_size: 32}\n" if task == "colorize" and "checkpoint" not in model else ""
    return (f"  - id: {case_id}\n    task: {task}\n    model: {model}\n    data: {data}\n{train}"
            f"    metrics: {metrics}\n" + "".join(f"    {line}\n" for line in extra.splitlines() if line))


def _suite(*cases: str) -> str:
    return "suite: demo\nseed: 0\ncases:\n" + "".join(cases)


def test_entry_points_are_listed_and_get_did_you_mean(tmp_path):
    listed = imgx("list")
    assert listed.returncode == 0, listed.stderr
    line = next(ln for ln in listed.stdout.splitlines() if "demo-colorizer" in ln)
    assert "imgx_demo_models.colorize:TinyColorizer" in line and "imgx-demo-models" in line
    path = write_suite(tmp_path, _suite(_case("c", "{name: demo-colorizr}")))
    proc = imgx("validate", str(path))
    assert proc.returncode == 2
    assert f"{path}:6: cases[0].model.name: unknown model 'demo-colorizr'; did you mean 'demo-colorizer'?" \
        in proc.stderr, proc.stderr


def test_validate_never_imports_the_users_module_and_run_does(tmp_path):
    (tmp_path / "marker_models.py").write_text(
        "import pathlib\npathlib.Path(__file__).with_name('imported').touch()\nNet = 'not a model'\n")
    path = write_suite(tmp_path, _suite(_case("c", '{name: "marker_models:Net"}')))
    env = {**__import__("os").environ}
    env["PYTHONPATH"] = f"{tmp_path}:{env.get('PYTHONPATH', '')}"
    assert imgx("validate", str(path), env=env).returncode == 0
    assert not (tmp_path / "imported").exists()
    proc = imgx("run", str(path), "--out", str(tmp_path / "run"), "-q", env=env)
    assert (tmp_path / "imported").exists()
    assert proc.returncode == 2
    assert f"{path}:6: cases[0].model.name: model marker_models:Net (import path) is a str, not a class or a " \
           "function" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_models_exit_2_before_any_case_runs(tmp_path):
    path = write_suite(tmp_path, _suite(
        _case("noimport", '{name: "no_such_pkg_xyz.models:Net"}'),
        _case("noattr", '{name: "imgx_demo_models.colorize:Missing"}'),
        _case("notcallable", '{name: "imgx_demo_models.colorize:NOT_CALLABLE"}'),
        _case("kwarg", '{name: demo-colorizer, widht: 4}'),
        _case("fine", "{name: encoder-decoder}"),
    ))
    assert imgx("validate", str(path)).returncode == 0  # nothing imported: names and shapes only
    proc = imgx("run", str(path), "--out", str(tmp_path / "run"), "-q")
    assert proc.returncode == 2
    err = proc.stderr
    assert ("cases[0].model.name: model no_such_pkg_xyz.models:Net (import path): cannot import module "
            "'no_such_pkg_xyz.models': ModuleNotFoundError") in err
    assert "cases[1].model.name: model imgx_demo_models.colorize:Missing (import path): module " \
           "'imgx_demo_models.colorize' has no attribute 'Missing'" in err
    assert "cases[2].model.name: model imgx_demo_models.colorize:NOT_CALLABLE (import path) is a int" in err
    assert "suite.yaml:24: cases[3].model.widht: model demo-colorizer (entry point of imgx-demo-models) takes no " \
           "keyword 'widht' (did you mean 'width'? it takes width, in_channels, out_channels)" in err
    assert "Traceback" not in err
    assert not (tmp_path / "run" / "cases").exists() or not list((tmp_path / "run" / "cases").iterdir())


def test_colorizers_by_entry_point_and_import_path_with_relative_gates(tmp_path):
    path = write_suite(tmp_path, _suite(
        _case("entry", "{name: demo-colorizer, width: 4}", extra='gates: {psnr: "> 0.1 * gray-copy"}'),
        _case("factory", '{name: "imgx_demo_models.colorize:make_colorizer", width: 4}', metrics="[mse]"),
        _case("instance", '{name: "imgx_demo_models.colorize:DEFAULT"}', metrics="[mse]"),
    ))
    proc = imgx("run", str(path), "--out", str(tmp_path / "run"), "-q", "--no-report")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = results(tmp_path / "run")
    for case in ("entry", "factory", "instance"):
        assert float(value(rows, case, "mse")) > 0 and float(value(rows, case, "mse", "gray-copy")) > 0
    assert {r["model"] for r in rows} == {"demo-colorizer", "imgx_demo_models.colorize:make_colorizer",
                                          "imgx_demo_models.colorize:DEFAULT"}
    record = next(json.loads(p.read_text()) for p in (tmp_path / "run" / "cases").glob("*.json")
                  if json.loads(p.read_text())["case_id"] == "entry")
    gate = record["gates"][0]
    assert gate["passed"] is True and gate["reference"] == "gray-copy" and gate["scale"] == 0.1
    assert gate["bound"] == pytest.approx(0.1 * float(value(rows, "entry", "psnr", "gray-copy")))
    assert "required > 0.1 * gray-copy (0.1 * gray-copy" in gate["detail"]


def test_broken_colorizers_fail_their_case_with_the_reason(tmp_path):
    path = write_suite(tmp_path, _suite(
        _case("shape", '{name: "imgx_demo_models.colorize:OneChannel"}', metrics="[mse]"),
        _case("dtype", '{name: "imgx_demo_models.colorize:IntegerOutput"}', metrics="[mse]"),
        _case("nan", '{name: "imgx_demo_models.colorize:NanAfterTraining"}', metrics="[mse]"),
        _case("notmodule", '{name: "imgx_demo_models.colorize:not_a_module"}', metrics="[mse]"),
    ))
    proc = imgx("run", str(path), "--out", str(tmp_path / "run"), "-q", "--no-report")
    assert proc.returncode == 1
    rows = results(tmp_path / "run")
    assert not [r for r in rows if r["status"] == "ok"]
    detail = {r["case_id"]: r["detail"] for r in rows}
    assert "returned output of shape (2, 1, 16, 16); expected (2, 3, 16, 16)" in detail["shape"]
    assert "dtype torch.int64; expected a floating dtype" in detail["dtype"]
    assert "non-finite" in detail["nan"]
    assert "returned a str, not a torch.nn.Module" in detail["notmodule"]


@pytest.mark.slow  # quality tier (issue 26): trains a colorizer twice over (~11 s)
def test_checkpoint_of_a_trained_builtin_reproduces_its_metrics(tmp_path):
    trained = write_suite(tmp_path, _suite(_case("col", "{name: encoder-decoder}")), "train.yaml")
    assert imgx("run", str(trained), "--out", str(tmp_path / "run1"), "-q", "--no-report").returncode == 0
    record = json.loads(next((tmp_path / "run1" / "cases").glob("*.json")).read_text())
    checkpoint = tmp_path / "run1" / record["artifacts"]["checkpoint"]
    assert checkpoint.suffix == ".safetensors" and checkpoint.is_file()
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.zeros(1)}, tmp_path / "pickled.safetensors")
    again = write_suite(tmp_path, _suite(
        _case("col", f"{{name: encoder-decoder, checkpoint: run1/models/{checkpoint.name}}}"),
        _case("unet", f"{{name: unet, checkpoint: run1/models/{checkpoint.name}}}", metrics="[mse]"),
        _case("pickle", "{name: encoder-decoder, checkpoint: pickled.safetensors}", metrics="[mse]"),
    ), "again.yaml")
    proc = imgx("run", str(again), "--out", str(tmp_path / "run2"), "-q", "--no-report")
    assert proc.returncode == 1
    first, second = results(tmp_path / "run1"), results(tmp_path / "run2")
    for metric in ("mse", "psnr", "ssim"):
        for ref in ("", "gray-copy"):
            assert value(second, "col", metric, ref) == value(first, "col", metric, ref)  # exactly, as written
    assert not [r for r in second if r["case_id"] == "col" and r["metric"] == "train_seconds"]
    detail = {r["case_id"]: r["detail"] for r in second if r["status"] == "failed"}
    assert "does not fit model unet (built-in): missing keys" in detail["unet"]
    assert "a pickle (torch.save) file; imgx loads safetensors only" in detail["pickle"]


def test_checkpoint_refusals_at_validation(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"\x80\x04")
    path = write_suite(tmp_path, _suite(
        _case("pt", "{name: encoder-decoder, checkpoint: model.pt}", metrics="[mse]"),
        _case("trained", "{name: encoder-decoder, checkpoint: model.pt}", metrics="[mse]",
              extra="train: {epochs: 1}"),
        _case("absent", "{name: encoder-decoder, checkpoint: absent.safetensors}", metrics="[mse]"),
    ))
    proc = imgx("validate", str(path))
    assert proc.returncode == 2
    assert "cases[0].model.checkpoint: " in proc.stderr and "imgx loads safetensors checkpoints only" in proc.stderr
    assert "cases[1].train: train: with model.checkpoint: the checkpoint is evaluated as it is" in proc.stderr
    assert "absent.safetensors: no such file" in proc.stderr


def test_perfect_and_identity_editors(tmp_path):
    path = write_suite(tmp_path, _suite(
        _case("perfect", "{name: demo-editor}", "edit", EDITS, "[target_mse, instruction_accuracy]",
              'inference: {warmup: 0, repeats: 1}\nsweep: {guidance_scale: [5.0, 7.5]}\n'
              'gates: {target_mse: "< identity", instruction_accuracy: ">= 1"}'),
        _case("identity", '{name: "imgx_demo_models.edit:identity_editor"}', "edit", EDITS,
              "[target_mse, instruction_accuracy]", "inference: {warmup: 0, repeats: 1}"),
    ))
    proc = imgx("run", str(path), "--out", str(tmp_path / "run"), "-q", "--no-report")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = results(tmp_path / "run")
    for case in ("perfect[guidance_scale=5.0]", "perfect[guidance_scale=7.5]"):
        assert float(value(rows, case, "instruction_accuracy")) == 1.0
        assert float(value(rows, case, "target_mse")) <= (0.5 / 255) ** 2  # within uint8 rounding of 0
    for metric in ("target_mse", "instruction_accuracy"):
        assert value(rows, "identity", metric) == value(rows, "identity", metric, "identity")
    outputs = (tmp_path / "run" / "outputs.csv").read_text()
    assert outputs.count("perfect[guidance_scale=7.5]") == 16  # 2 crops x 8 instructions, one row each


def test_editor_sweep_axis_it_does_not_accept_is_refused_before_running(tmp_path):
    path = write_suite(tmp_path, _suite(
        _case("strength", '{name: "imgx_demo_models.edit:strength_editor", strength: 0.3}', "edit", EDITS,
              "[target_mse]", "sweep: {guidance_scale: [5.0, 7.5]}"),
    ))
    proc = imgx("run", str(path), "--out", str(tmp_path / "run"), "-q")
    assert proc.returncode == 2
    assert f"{path}:9: cases[0].sweep.guidance_scale: sweep axis 'guidance_scale': model " \
           "imgx_demo_models.edit:strength_editor (import path) does not accept it; it accepts strength, scale" \
           in proc.stderr, proc.stderr


def test_editors_that_raise_return_nan_or_too_few_images_fail(tmp_path):
    path = write_suite(tmp_path, _suite(*(
        _case(name, f'{{name: "imgx_demo_models.edit:{name}_editor"}}', "edit", EDITS, "[target_mse]",
              "inference: {warmup: 0, repeats: 1}") for name in ("raising", "nan", "wrong_count")),
        # A factory's editor is known only once built: an axis it does not take fails the case, never ignored.
        _case("factory", '{name: "imgx_demo_models.edit:make_blender", strength: 0.2}', "edit", EDITS,
              "[target_mse]", "inference: {warmup: 0, repeats: 1}\nsweep: {num_inference_steps: [1]}")))
    proc = imgx("run", str(path), "--out", str(tmp_path / "run"), "-q", "--no-report")
    assert proc.returncode == 1
    rows = results(tmp_path / "run")
    assert not [r for r in rows if r["status"] == "ok"]
    detail = {r["case_id"]: r["detail"] for r in rows if r["metric"] in ("", )}
    assert "raised on ['invert the colors']: ValueError: cannot invert" in detail["raising"]
    assert "expected a list of 1 image(s)" in detail["wrong_count"]
    assert "does not accept sweep axis 'num_inference_steps'" in detail["factory[num_inference_steps=1]"]
    records = {json.loads(p.read_text())["case_id"]: json.loads(p.read_text())
               for p in (tmp_path / "run" / "cases").glob("*.json")}
    assert records["nan"]["status"] == "failed" and "16 nan" in records["nan"]["detail"]


def test_text_to_image_callable_and_a_generator_of_its_own(tmp_path):
    path = write_suite(tmp_path, _suite(
        _case("paint", "{name: demo-painter, size: 16}", "text-to-image", "{name: digits}", "[latency]",
              'prompts: ["a handwritten digit 3", "a handwritten digit 7"]\nsamples: 2\n'
              "inference: {warmup: 0, repeats: 2}"),
        _case("gan", "{name: demo-gan, latent_dim: 8}", "generate", "{name: digits, image_size: 28, train: 128, "
              "test: 64}", "[fid]", 'train: {epochs: 1, batch_size: 32}\nsamples: 64\ngates: {fid: "< untrained"}'),
    ))
    proc = imgx("run", str(path), "--out", str(tmp_path / "run"), "-q", "--no-report")
    assert proc.returncode in (0, 1), proc.stderr  # the GAN gate may or may not hold after one epoch
    rows = results(tmp_path / "run")
    assert float(value(rows, "paint", "latency_ms_p50")) > 0
    assert all(math.isfinite(float(value(rows, "gan", "fid", ref))) for ref in ("", "untrained", "real-split"))
    record = next(json.loads(p.read_text()) for p in (tmp_path / "run" / "cases").glob("*.json")
                  if json.loads(p.read_text())["case_id"] == "gan")
    assert record["status"] == "ok" and (tmp_path / "run" / record["artifacts"]["checkpoint"]).is_file()
    assert "untrained" in record["gates"][0]["detail"]
    outputs = [ln for ln in (tmp_path / "run" / "outputs.csv").read_text().splitlines() if ln.startswith("paint")]
    assert len(outputs) == 4


@pytest.mark.slow  # quality tier (issue 26): two runs with FID (~18 s)
def test_translation_module_of_its_own_and_a_generator_checkpoint(tmp_path):
    gan = ("{name: digits, image_size: 28, train: 64, test: 32}")
    first = write_suite(tmp_path, _suite(
        _case("gan", "{name: demo-gan, latent_dim: 8}", "generate", gan, "[fid]",
              "train: {epochs: 1, batch_size: 32}\nsamples: 32"),
    ), "first.yaml")
    assert imgx("run", str(first), "--out", str(tmp_path / "run1"), "-q", "--no-report").returncode == 0
    record = json.loads(next((tmp_path / "run1" / "cases").glob("*.json")).read_text())
    path = write_suite(tmp_path, _suite(
        _case("gan", f"{{name: demo-gan, latent_dim: 8, checkpoint: run1/{record['artifacts']['checkpoint']}}}",
              "generate", gan, "[fid]", "samples: 32"),
        _case("pairs", "{name: demo-colorizer, width: 4}", "translate",
              "{name: photo-pairs, pair: gray, image_size: 16, train: 64, test: 16}", "[mse, psnr]",
              'train: {epochs: 1, batch_size: 32}\ngates: {mse: "< 100 * identity"}'),
    ), "second.yaml")
    proc = imgx("run", str(path), "--out", str(tmp_path / "run2"), "-q", "--no-report")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    before, after = results(tmp_path / "run1"), results(tmp_path / "run2")
    for ref in ("", "untrained", "real-split"):
        assert value(after, "gan", "fid", ref) == value(before, "gan", "fid", ref)  # exactly, as written
    for ref in ("", "identity", "untrained"):
        assert float(value(after, "pairs", "mse", ref)) >= 0
    unpaired = write_suite(tmp_path, _suite(
        _case("styles", "{name: demo-colorizer}", "translate",
              "{name: photo-styles, style: sepia, image_size: 16, train: 64, test: 16}", "[target_mse]"),
    ), "unpaired.yaml")
    proc = imgx("validate", str(unpaired))
    assert proc.returncode == 2 and "data set 'photo-styles' is unpaired" in proc.stderr


def test_builtin_only_options_and_axes_are_refused_for_a_model_of_your_own(tmp_path):
    path = write_suite(tmp_path, _suite(
        _case("opts", '{name: "imgx_demo_models.edit:identity_editor", dtype: float16, weights: x/y}', "edit", EDITS,
              "[target_mse]", "sweep: {attention: [sdpa, math]}"),
    ))
    proc = imgx("validate", str(path))
    assert proc.returncode == 2
    assert "cases[0].model.dtype: 'dtype' is an option of the built-in diffusers models" in proc.stderr
    assert "cases[0].model.weights: 'weights' is an option" in proc.stderr
    assert "cases[0].sweep.attention: sweep axis 'attention' sets an option of the built-in diffusers models" \
        in proc.stderr


def test_new_weights_at_the_same_checkpoint_path_are_a_new_case(tmp_path):
    from safetensors.torch import save_file

    from imgx.models.colorizer import EncoderDecoder
    from imgx.suite import expand, load_suite

    save_file(EncoderDecoder().state_dict(), str(tmp_path / "w.safetensors"))
    path = write_suite(tmp_path, _suite(_case("c", "{name: encoder-decoder, checkpoint: w.safetensors}")))
    before = expand(load_suite(path))[0].key
    save_file({k: v + 1 for k, v in EncoderDecoder().state_dict().items()}, str(tmp_path / "w.safetensors"))
    assert expand(load_suite(path))[0].key != before


def test_a_module_beside_the_suite_imports_under_the_console_script_from_any_folder(tmp_path):
    """The ``imgx`` console script's sys.path[0] is its own folder: the suite's folder is added for user models."""
    import os
    import shutil
    import subprocess

    models = tmp_path / "project"
    models.mkdir()
    (models / "beside_models.py").write_text(
        "from torch import nn\n\n\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.conv = nn.Conv2d(1, 3, 3, padding=1)\n\n    def forward(self, x):\n"
        "        return self.conv(x).tanh()\n")
    path = write_suite(models, _suite(_case("c", '{name: "beside_models:Net"}')))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    exe = shutil.which("imgx", path=str(Path(sys.executable).parent))
    assert exe, "the imgx console script is installed beside this interpreter"
    proc = subprocess.run([exe, "run", str(path), "--out", str(tmp_path / "run"), "-q", "--no-report"],
                          capture_output=True, text=True, timeout=600, cwd=elsewhere, env=env)
    assert proc.returncode == 0, proc.stderr
    assert results(tmp_path / "run")[0]["status"] == "ok"
