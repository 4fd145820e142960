"""White-box references: IG and SmoothGrad vs Captum side by side, and the per-image cost of AGI,
AttEXplore and LA.

IG and SmoothGrad run against Captum on the same torch module, the same explicands, the same
target (the prediction), the same number of steps / noise samples, interleaved in one process
after a warm-up: Captum gets the module followed by ``nn.Softmax`` (as the reference drivers
do), ours ``output="probs"``; IG uses the ``riemann_right`` rule on both sides (identical rule,
so the maps must agree), SmoothGrad σ = 0.15 and signed gradients (``abs=False``). Captum runs
with its defaults (all steps / samples in one batch), ours with its automatic batch size. The
published ratio is the median over rounds of ours/Captum measured back to back (goal ≤ 1.0).
The difference of the maps is measured in separate, untimed calls: IG directly, SmoothGrad with
Captum handed our noise (its own draws are otherwise different).

AGI, AttEXplore and LA are timed per image with their forward/backward counts: at their default
settings on the demo MNIST CNN, and on a 224×224 ResNet-18 (random weights) with reduced
settings unless ``--full-224`` (the defaults cost ≈ 1200 passes per image there).

    python -m benchmarks.gradients_speed [--repeats 9] [--repeats-224 5] [--steps-224 20] [--skip-224] [--full-224]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from benchmarks import harness as h

NAME = "gradients_speed"


def _captum_pair(
    model: Any, x: Any, target: Any, kind: str, n: int
) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """(ours, Captum) zero-argument callables returning numpy maps for one comparison."""
    import torch
    from captum.attr import IntegratedGradients as CaptumIG
    from captum.attr import NoiseTunnel
    from captum.attr import Saliency as CaptumSaliency

    from onnxplain.gradients import IntegratedGradients, SmoothGrad

    with_softmax = torch.nn.Sequential(model, torch.nn.Softmax(dim=1)).eval()
    tgt = [int(t) for t in target]
    if kind == "ig":
        ours_m = IntegratedGradients(steps=n, rule="riemann_right")

        def captum() -> np.ndarray:
            return (
                CaptumIG(with_softmax)
                .attribute(x, target=tgt, n_steps=n, method="riemann_right")
                .detach()
                .numpy()
            )

    else:
        ours_m = SmoothGrad(samples=n, sigma=0.15, seed=0)

        def captum() -> np.ndarray:
            nt = NoiseTunnel(CaptumSaliency(with_softmax))
            out = nt.attribute(x, nt_type="smoothgrad", nt_samples=n, stdevs=0.15, target=tgt, abs=False)
            return out.detach().numpy()

    def ours() -> np.ndarray:
        return ours_m.explain(model, x, target=tgt).attributions

    return ours, captum


def _sg_same_noise_difference(model: Any, x: Any, target: Any, n: int) -> float:
    """max |ours − Captum| / max |Captum| for SmoothGrad when Captum is handed our noise."""
    from captum.attr import NoiseTunnel

    from onnxplain.gradients import SmoothGrad

    sg = SmoothGrad(samples=n, sigma=0.15, seed=0)
    noise = sg.noise(tuple(x.shape[1:]), dtype=x.dtype)
    original = NoiseTunnel.__dict__["_add_noise_to_input"]  # the staticmethod object itself

    def same_noise(inp: Any, stdev: float, k: int) -> Any:
        return inp.repeat_interleave(k, dim=0) + noise.repeat(inp.shape[0], *([1] * (inp.ndim - 1)))

    NoiseTunnel._add_noise_to_input = staticmethod(same_noise)  # type: ignore[method-assign]
    try:
        ours, captum = _captum_pair(model, x, target, "sg", n)
        a, b = ours(), captum()
    finally:
        NoiseTunnel._add_noise_to_input = original  # type: ignore[method-assign]
    return float(np.abs(a - b).max() / np.abs(b).max())


def captum_comparisons(name: str, x_np: np.ndarray, steps: int, repeats: int) -> list[dict[str, Any]]:
    import torch

    model = h.torch_model(name)
    x = torch.from_numpy(np.ascontiguousarray(x_np))
    with torch.no_grad():
        target = model(x).argmax(1).numpy()
    rows = []
    for kind in ("ig", "sg"):
        print(f"{name}: {kind} vs Captum, {steps} {'steps' if kind == 'ig' else 'samples'}", file=sys.stderr)
        ours, captum = _captum_pair(model, x, target, kind, steps)
        timings, results = h.interleave(
            {"ours": ours, "captum": captum}, repeats=repeats, warmup=1, min_block=h.MIN_BLOCK_SECONDS
        )
        if kind == "ig":
            a, b = results["ours"], results["captum"]
            diff = float(np.abs(a - b).max() / np.abs(b).max())
        else:
            diff = _sg_same_noise_difference(model, x, target, steps)
        rows.append(
            {
                "model": name,
                "method": kind,
                "batch": int(x.shape[0]),
                "input": list(x.shape[1:]),
                "n": steps,
                "ours": timings["ours"].to_dict(),
                "captum": timings["captum"].to_dict(),
                "ratio_medians": h.ratio(timings["ours"], timings["captum"]),
                "ratio_paired": h.paired_ratio(timings["ours"], timings["captum"]),
                "max_rel_diff": diff,
            }
        )
    return rows


def exploration_costs(
    name: str, x_np: np.ndarray, settings: dict[str, dict[str, Any]], repeats: int
) -> list[dict]:
    import torch

    from onnxplain.gradients import AGI, LA, AttEXplore

    model = h.torch_model(name)
    x = torch.from_numpy(np.ascontiguousarray(x_np))
    classes = {"agi": AGI, "attexplore": AttEXplore, "la": LA}
    methods = {k: classes[k](**kw) for k, kw in settings.items()}
    last: dict[str, Any] = {}

    def case(key: str) -> Callable[[], Any]:
        def run() -> Any:
            last[key] = methods[key].explain(model, x)
            return None

        return run

    warm = {
        k: (lambda k=k: classes[k](**{**settings[k], **_tiny(k)}).explain(model, x[:1])) for k in settings
    }
    print(f"{name}: AGI / AttEXplore / LA", file=sys.stderr)
    timings, _ = h.interleave({k: case(k) for k in settings}, repeats=repeats, warmup=1, warmup_cases=warm)
    rows = []
    b = int(x.shape[0])
    for k in settings:
        e = last[k]
        rows.append(
            {
                "model": name,
                "method": k,
                "batch": b,
                "settings": settings[k],
                "timing": timings[k].to_dict(),
                "seconds_per_image": timings[k].median / b,
                "forwards_per_image": e.n_queries / b,
                "backward_per_image": e.n_backward / b,
                "model_share": e.model_seconds / e.seconds if e.seconds > 0 else float("nan"),
            }
        )
    return rows


def _tiny(kind: str) -> dict[str, Any]:
    return {
        "agi": {"steps": 1, "n_classes": 1},
        "attexplore": {"steps": 1, "n_approx": 1},
        "la": {"steps": 1, "samples": 1},
    }[kind]


def _round_range(r: dict[str, Any]) -> str:
    """min–max of the per-round ratios ours/Captum (how much the shared machine moved them)."""
    pairs = [a / b for a, b in zip(r["ours"]["seconds"], r["captum"]["seconds"], strict=False) if b > 0]
    return f"{min(pairs):.2f}–{max(pairs):.2f}" if pairs else "—"


def markdown(res: dict[str, Any]) -> str:
    lines = [
        "IG and SmoothGrad against Captum on the same torch module, explicands and targets, at equal "
        "steps / noise samples; interleaved rounds in one process after a warm-up, each timing a block of "
        f"consecutive calls (≥ {h.MIN_BLOCK_SECONDS:g} s) per contender after a {h.SETTLE_SECONDS:g} s pause; "
        "medians of the time per call. Absolute times on "
        "a shared machine are noisy (the load is given below): the ratios (ours/Captum, median of "
        "back-to-back pairs, with the range over rounds) are the numbers to read. "
        "Δ = max |ours − Captum| / max |Captum| (SmoothGrad: Captum handed our noise).",
        "",
        h.md_table(
            [
                "model",
                "explicands",
                "method",
                "steps / samples",
                "ours",
                "Captum",
                "ours/Captum",
                "per-round range",
                "Δ",
            ],
            [
                [
                    r["model"],
                    f"{r['batch']} × {'×'.join(map(str, r['input']))}",
                    "IG (riemann_right)" if r["method"] == "ig" else "SmoothGrad (σ 0.15)",
                    r["n"],
                    h.fmt_s(r["ours"]["median"]),
                    h.fmt_s(r["captum"]["median"]),
                    f"**{r['ratio_paired']:.2f}**",
                    _round_range(r),
                    f"{r['max_rel_diff']:.1e}",
                ]
                for r in res["captum"]
            ],
        ),
        "",
        "AGI, AttEXplore and LA, per image (a batch of explicands divided by its size); forwards "
        "include the one that resolves the target; `model share` = model_seconds / seconds.",
        "",
        h.md_table(
            [
                "model",
                "method",
                "settings",
                "s / image",
                "forwards / image",
                "backward / image",
                "model share",
            ],
            [
                [
                    r["model"],
                    r["method"],
                    ", ".join(f"{k}={v}" for k, v in r["settings"].items()) or "defaults",
                    h.fmt_s(r["seconds_per_image"]),
                    f"{r['forwards_per_image']:.0f}",
                    f"{r['backward_per_image']:.0f}",
                    f"{r['model_share']:.2f}",
                ]
                for r in res["exploration"]
            ],
        ),
        "",
        f"Command: `{res['command']}` — {h.load_line(res['load_before'], res['load_after'])}; "
        f"torch threads {res['threads']}; {res['finished']}.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="rounds on the cheap models (default 9)")
    parser.add_argument("--repeats-224", type=int, default=5, help="rounds on ResNet-18 (default 5)")
    parser.add_argument(
        "--steps", type=int, default=50, help="IG steps / SG samples on the cheap models (50)"
    )
    parser.add_argument("--steps-224", type=int, default=20, help="IG steps / SG samples on ResNet-18 (20)")
    parser.add_argument("--skip-224", action="store_true", help="only the demo CNN and the small 224 CNN")
    parser.add_argument(
        "--full-224", action="store_true", help="AGI/AttEXplore/LA defaults on ResNet-18 (slow)"
    )
    args = parser.parse_args(argv)

    import torch

    load_before = h.load_average()
    digits = np.stack([h.demo_digit(i) for i in range(8)])
    image = h.natural_image(224)[None]
    comparisons = captum_comparisons("demo", digits, args.steps, args.repeats)
    comparisons += captum_comparisons("small224", image, args.steps, args.repeats)
    if not args.skip_224:
        comparisons += captum_comparisons("resnet18", image, args.steps_224, args.repeats_224)

    demo_settings: dict[str, dict[str, Any]] = {
        "agi": {},
        "attexplore": {"input_diversity": "resize"},
        "la": {},
    }
    exploration = exploration_costs("demo", digits, demo_settings, args.repeats)
    if not args.skip_224:
        small: dict[str, dict[str, Any]] = (
            {"agi": {}, "attexplore": {}, "la": {}}
            if args.full_224
            else {
                "agi": {"n_classes": 4, "steps": 5},
                "attexplore": {"n_approx": 4, "steps": 5},
                "la": {"samples": 4, "steps": 5},
            }
        )
        exploration += exploration_costs("resnet18", image, small, 1)

    res = {
        "command": h.command(argv),
        "load_before": load_before,
        "load_after": h.load_average(),
        "threads": torch.get_num_threads(),
        "finished": time.strftime("%Y-%m-%d %H:%M %Z"),
        "captum": comparisons,
        "exploration": exploration,
    }
    return h.publish(NAME, res, markdown(res))


if __name__ == "__main__":
    sys.exit(main())
