"""The benchmark machinery, one module per job (the names are re-exported here, so scripts use
``from benchmarks import harness as h``): timing, memory, the model's own speed limit, the
machine, the benchmark models, and writing results into ``benchmarks/README.md``.

Every comparison in ``benchmarks/`` follows the same rules (issue 8):

- **Interleaved**: the contenders of one comparison run in the same process, alternating
  (A B, B A, A B, …) after a warm-up, so a change in machine load hits both alike;
  :func:`interleave`.
- **Medians and ratios**: absolute times on a shared machine are noisy; what we publish is the
  median of several repetitions and the ratio ours/theirs measured side by side (:class:`Timing`,
  :func:`ratio`).
- **Peak memory in a fresh process**: :func:`run_isolated` runs a setup function in a child
  interpreter, resets the kernel's peak-RSS mark (``/proc/self/clear_refs``) after the setup, runs
  the measured call and reports the peak RSS of the call and of the whole process.
- **The model's own limit**: :func:`best_per_sample_time` times a plain ``onnxruntime``
  ``InferenceSession`` over batch sizes; ``n_queries × best per-sample time`` is the least wall
  time any query-based explainer can take (query efficiency = that / wall time).
- **The exact command** next to every number: :func:`command` and :func:`write_section`.

Nothing here imports torch at module level (the benchmark models are built lazily).
"""

from benchmarks.harness.limits import BestTime, best_per_sample_time, plain_session
from benchmarks.harness.memory import (
    IsolatedRun,
    calibration_setup,
    current_rss,
    peak_rss,
    reset_peak_rss,
    run_isolated,
)
from benchmarks.harness.paths import (
    BENCH_DIR,
    CACHE_DIR,
    COMMAND_ENV,
    IMAGENET_MEAN,
    IMAGENET_STD,
    NO_README_ENV,
    README,
    RESULTS_DIR,
    ROOT,
)
from benchmarks.harness.reporting import (
    begin_marker,
    command,
    end_marker,
    fmt_bytes,
    fmt_s,
    machine,
    machine_markdown,
    md_table,
    publish,
    save_results,
    write_section,
)
from benchmarks.harness.timing import (
    MIN_BLOCK_SECONDS,
    SETTLE_SECONDS,
    Timing,
    interleave,
    load_average,
    load_line,
    paired_ratio,
    profile,
    ratio,
)
from benchmarks.harness.zoo import (
    add_device_options,
    backend,
    demo_digit,
    demo_onnx,
    input_shape_of,
    natural_image,
    onnx_model_path,
    pearson,
    query_model,
    resnet18_torch,
    small224_torch,
    torch_model,
)

__all__ = [
    "BENCH_DIR",
    "BestTime",
    "CACHE_DIR",
    "COMMAND_ENV",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IsolatedRun",
    "MIN_BLOCK_SECONDS",
    "NO_README_ENV",
    "README",
    "RESULTS_DIR",
    "ROOT",
    "SETTLE_SECONDS",
    "Timing",
    "add_device_options",
    "backend",
    "begin_marker",
    "best_per_sample_time",
    "calibration_setup",
    "command",
    "current_rss",
    "demo_digit",
    "demo_onnx",
    "end_marker",
    "fmt_bytes",
    "fmt_s",
    "input_shape_of",
    "interleave",
    "load_average",
    "load_line",
    "machine",
    "machine_markdown",
    "md_table",
    "natural_image",
    "onnx_model_path",
    "paired_ratio",
    "peak_rss",
    "pearson",
    "plain_session",
    "profile",
    "publish",
    "query_model",
    "ratio",
    "reset_peak_rss",
    "resnet18_torch",
    "run_isolated",
    "save_results",
    "small224_torch",
    "torch_model",
    "write_section",
]
