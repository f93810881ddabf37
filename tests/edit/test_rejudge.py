"""max_invalid is not part of the case key: a reused case's status is recomputed under the suite as it is now."""

import torch

from imgx.results import load_run
from imgx.runner import RunContext, execute, run_suite
from imgx.suite import expand, load_suite
from tests.edit.conftest import edit_suite


def test_a_reused_case_is_judged_by_its_max_invalid_now(tmp_path):
    from imgx.models.instruct_pix2pix import load_pipeline

    out = tmp_path / "out"
    out.mkdir()
    case = expand(load_suite(edit_suite(tmp_path, metrics="[ssim]")))[0]  # max_invalid 0
    ctx = RunContext(out=out, quiet=True)
    loaded = load_pipeline(case.spec.model, "cpu", ctx.cache_dir, ctx.resources)
    with torch.no_grad():  # every output NaN, as a float16 VAE overflow would give
        loaded.pipe.vae.decoder.conv_out.bias.fill_(float("nan"))
    record, ran = execute(case, ctx, {})
    assert ran and record["status"] == "failed" and "max_invalid is 0" in record["detail"]

    tolerant = run_suite(edit_suite(tmp_path, metrics="[ssim]", case="    max_invalid: 4\n"), out, quiet=True,
                         report=False)
    assert (tolerant.ran, tolerant.reused) == (0, 1)  # the same key: reused, not run again
    (rec,) = tolerant.records
    assert rec["status"] == "ok" and "4 of 4 outputs invalid (tolerated by max_invalid 4)" in rec["detail"]
    assert tolerant.exit_code == 0
    assert load_run(out)[1][0]["status"] == "ok"  # written back: reports and comparisons read the new verdict

    strict = run_suite(edit_suite(tmp_path, metrics="[ssim]", case="    max_invalid: 1\n"), out, quiet=True,
                       report=False)
    (rec,) = strict.records
    assert rec["status"] == "failed" and "4 of 4 outputs invalid (4 nan); max_invalid is 1" in rec["detail"]
    assert strict.exit_code == 1 and load_run(out)[1][0]["status"] == "failed"
