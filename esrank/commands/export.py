"""``esrank export-model``: export the encoder to ONNX Runtime or OpenVINO (fp32 or int8) with a quality check."""
from __future__ import annotations

from typing import Any

import click

from .common import echo_err


@click.command("export-model")
@click.argument("model", required=False, default=None)
@click.option("--runtime", type=click.Choice(["onnx", "openvino"]), required=True, envvar="ESRANK_EXPORT_RUNTIME",
              help="onnx: ONNX Runtime (extra esrank[onnx]); openvino: OpenVINO IR (extra esrank[openvino]).")
@click.option("--quantize", type=click.Choice(["none", "int8"]), default="none", show_default=True,
              envvar="ESRANK_EXPORT_QUANTIZE",
              help="int8: per-channel dynamic (onnx) or static, calibrated on --calibration documents (openvino).")
@click.option("--calibration", type=click.Path(exists=True, dir_okay=False, allow_dash=False), default=None,
              envvar="ESRANK_CALIBRATION",
              help="Documents (JSONL/Parquet/CSV) to calibrate OpenVINO int8 on, e.g. those of the index "
                   "(the first 128 are used).")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Directory that receives onnx/ or openvino/ (default: the model directory, where `rank` looks; "
                   "for the packaged default model or a read-only one, $ESRANK_EXPORT_DIR/<fingerprint>, default "
                   "~/.cache/esrank/exports/<fingerprint>).")
@click.option("--threads", type=click.IntRange(1, 1024), default=None, envvar="ESRANK_THREADS",
              help="CPU threads for the export and its check.")
def export_model_cmd(model: str | None, **kw: Any) -> None:
    """Export MODEL (default: all-MiniLM-L6-v2) for `--runtime onnx|openvino`, and check it against torch fp32.

    The check (embedding cosine and same top-5 keyphrases on the bundled sample corpus, speed-up over torch fp32)
    is written to esrank_runtime.json next to the export; `esrank rank --runtime auto` uses the fastest export
    whose check passed.
    """
    from ..ranking.runtimes import export_model

    result = export_model(model, kw["runtime"], quantize=kw["quantize"], out=kw["out"],
                          calibration=kw["calibration"], threads=kw["threads"])
    c = result.check
    verdict = "passed" if c["passed"] else "FAILED (--runtime auto will not use it)"
    echo_err(f"{result.directory}: {result.runtime} {result.variant} ({result.quantization}); check {verdict}: "
             f"smallest cosine to torch fp32 {c['min_cosine']:.4f}, same top-5 keyphrases "
             f"{100 * c['same_top5']:.0f}% of {c['documents']} documents, {c['speedup_vs_torch_fp32']:.1f}× torch fp32")
    if not c["passed"]:
        raise click.exceptions.Exit(1)


COMMANDS = [export_model_cmd]
