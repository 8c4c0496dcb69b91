"""Stage 1, global restoration: the glue of the official ``Global/test.py`` around the networks.

The networks are black boxes.  The official chain is ``decoder(mapping(encoder(x)))`` for the
quality path and ``decoder(mapping(encoder(x), mask))`` for the scratch paths (VAE_A encoder,
a mapping network, VAE_B decoder; docs/reference_facts.md#global-networks).
:func:`global_generator` composes the three into one :class:`Generator` callable
``generator(x, mask) -> y`` and every other function here takes that callable, so tests can
replace the whole chain by a fake.

Paths (docs/reference_facts.md#stage-1-restoration-glue):

* **Quality** (no scratch): :func:`prepare_quality_input` resizes the photo to the network grid
  (``test_mode`` ``"Full"`` — what run.py uses —, ``"Scale"`` or ``"Crop"``), then
  :func:`restore_quality` runs the generator on its [-1,1] tensor.
* **Scratch** (standard and HR share the code): the photo and mask come from scratch detection
  (:mod:`oldphoto.scratch`, sides multiples of 16) and are not resized.  With ``hr`` the mask is
  first dilated (:func:`dilate_mask`); the holes are painted white (:func:`synthesize_holes`) and
  the generator gets the hole image and the full-resolution ``1×1×H×W`` {0,1} mask.

Outputs (the official ``origin/``, ``input_image/``, ``restored_image/``) are all at the network
size: nothing is resized back (bug B3, reproduced;
docs/reference_facts.md#b3-the-output-is-never-resized-back).  ``input_image`` is the
min/max-stretched network input (a debug image, not the input) and ``restored_image`` is, by
default, the min/max-stretched output (bug B2,
docs/reference_facts.md#b2-stage-1-outputs-are-min-max-stretched, reproduced because the face
stages consume it; ``stretch="clamp"`` is the alternative).  See :mod:`oldphoto.tensors`.

Minimum sizes: Full mode needs both sides ≥ 3 px (a side of 1 or 2 px rounds to 0), otherwise
:class:`oldphoto.errors.BadImageError` is raised with ``path=None`` for the caller to fill in.
Scale and Crop modes bring the short side to 256 px and accept any non-empty image.

Memory, per image of ``N = H·W`` pixels at network size, outside the networks: the uint8 origin
(3N bytes), the float32 network input (12N), the output (12N), and up to ≈ 16·3N bytes transiently
while one stretched uint8 image is produced.  The networks' activations are far larger (several
hundred bytes per pixel): :func:`plan_stage1` estimates the job's peak (:mod:`oldphoto.tiling`)
and, only when the whole image would exceed the job's memory budget, the generator runs in
overlapping tiles blended with feathered seams (approximate: instance norm and attention become
per tile).  Every photo that fits the budget gets the exact official computation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Literal, NamedTuple, Protocol

import numpy as np

from oldphoto.errors import BadImageError
from oldphoto.mode import HR_MASK_DILATION, Mode
from oldphoto.tensors import clamp_to_uint8, official_stretch, to_network, to_tensor

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

TestMode = Literal["Full", "Scale", "Crop"]
Stretch = Literal["official", "clamp"]
Size = tuple[int, int]
Box = tuple[int, int, int, int]

CROP_SIZE = 256
"""Side of the centre crop of ``test_mode="Crop"``, and the short side of ``"Scale"``."""



class Generator(Protocol):
    """The restoration network chain as one callable: [-1,1] image in, [-1,1] image out.

    ``mask`` is ``None`` for the quality path and the full-resolution ``1×1×H×W`` {0,1} float32
    scratch mask (1 = scratch) for the scratch paths.
    """

    def __call__(self, x: "torch.Tensor", mask: "torch.Tensor | None" = None) -> "torch.Tensor": ...


class RestoredImages(NamedTuple):
    """The three images stage 1 writes for one photo (uint8 RGB ``H×W×3``, all at network size)."""

    origin: np.ndarray
    """The photo as the network saw it before normalisation (unmodified in scratch mode)."""
    input_image: np.ndarray
    """The network input, min/max-stretched (holes painted white in scratch mode)."""
    restored: np.ndarray
    """The restored photo, the input of stages 2–4."""


class GlobalGenerator:
    """``decoder(mapping(encoder(x)[, mask]))``: the official stage-1 network chain.

    Args:
        encoder: ``encoder(x) -> z``, the VAE_A encoder (``net.encode``).
        mapping: ``mapping(z) -> z'`` (quality) or ``mapping(z, mask) -> z'`` (scratch, HR).
        decoder: ``decoder(z') -> y``, the VAE_B decoder (``net.decode``).
    """

    def __init__(self, encoder: Callable[..., Any], mapping: Callable[..., Any],
                 decoder: Callable[..., Any]) -> None:
        self.encoder = encoder
        self.mapping = mapping
        self.decoder = decoder

    def __call__(self, x: "torch.Tensor", mask: "torch.Tensor | None" = None) -> "torch.Tensor":
        latent = self.encoder(x)
        latent = self.mapping(latent) if mask is None else self.mapping(latent, mask)
        return self.decoder(latent)


def global_generator(encoder: Callable[..., Any], mapping: Callable[..., Any],
                     decoder: Callable[..., Any]) -> GlobalGenerator:
    """The generator callable for the quality or scratch path from its three networks.

    For VAE modules pass the bound methods, e.g. ``global_generator(vae_a.encode, mapping,
    vae_b.decode)``; objects with ``encode``/``decode`` methods are accepted as such too.
    """
    encode = getattr(encoder, "encode", encoder)
    decode = getattr(decoder, "decode", decoder)
    return GlobalGenerator(encode, mapping, decode)


# ---------------------------------------------------------------------------------------------
# Geometry of the quality path (docs/reference_facts.md#quality-path-geometry).
# round() is Python's: halves to even.


def _round_to_multiple(value: float, multiple: int) -> int:
    return int(round(value / multiple) * multiple)


def full_size(w: int, h: int) -> Size:
    """Full mode: each side rounded to a multiple of 4 (half to even): 298×450 → 296×448.

    Raises:
        BadImageError: a side of 2 px or less (it would round to 0).
    """
    size = (_round_to_multiple(w, 4), _round_to_multiple(h, 4))
    if min(size) <= 0:
        raise BadImageError(None, f"image too small: {w}×{h} px; the restoration needs both "
                                  "sides ≥ 3 px")
    return size


def scale_size(w: int, h: int) -> Size:
    """Scale mode: short side 256 (float long side), then both rounded to multiples of 4.

    Square images take the ``w ≥ h`` branch.  298×450 → 256×388; 303×206 → 376×256.
    """
    if w <= 0 or h <= 0:
        raise BadImageError(None, f"image too small: {w}×{h} px")
    if w < h:
        scaled_w, scaled_h = float(CROP_SIZE), h / w * CROP_SIZE
    else:
        scaled_w, scaled_h = w / h * CROP_SIZE, float(CROP_SIZE)
    return _round_to_multiple(scaled_w, 4), _round_to_multiple(scaled_h, 4)


def crop_resize_size(w: int, h: int) -> Size:
    """Crop mode, step 1: the size before cropping.

    Unchanged if both sides are ≥ 256; otherwise the short side becomes 256 and the long side
    ``int(256*long/short)`` (torchvision ``Resize(256)``).  The official code used the removed
    ``transforms.Scale`` here and crashes (bug B10,
    docs/reference_facts.md#b10-crop-mode-crashes-on-small-photos); this is the fix.
    303×206 → 376×256.
    """
    if w <= 0 or h <= 0:
        raise BadImageError(None, f"image too small: {w}×{h} px")
    if w >= CROP_SIZE and h >= CROP_SIZE:
        return w, h
    if w <= h:
        return CROP_SIZE, int(CROP_SIZE * h / w)
    return int(CROP_SIZE * w / h), CROP_SIZE


def crop_box(w: int, h: int) -> Box:
    """Crop mode, step 2: the centre 256×256 box ``(left, top, right, bottom)``.

    The box is in the coordinates of the image after step 1, i.e. of size
    ``crop_resize_size(w, h)``; ``top = int(round((H − 256)/2))``, likewise ``left``
    (torchvision ``CenterCrop``).  298×450 → (21, 97, 277, 353); 303×206 → (60, 0, 316, 256).
    """
    resized_w, resized_h = crop_resize_size(w, h)
    top = int(round((resized_h - CROP_SIZE) / 2.0))
    left = int(round((resized_w - CROP_SIZE) / 2.0))
    return left, top, left + CROP_SIZE, top + CROP_SIZE


def quality_geometry(w: int, h: int, test_mode: TestMode) -> tuple[Size, Box | None]:
    """Resize target ``(w, h)`` and crop box (``None`` except in Crop mode) of a ``w×h`` photo."""
    if test_mode == "Full":
        return full_size(w, h), None
    if test_mode == "Scale":
        return scale_size(w, h), None
    if test_mode == "Crop":
        return crop_resize_size(w, h), crop_box(w, h)
    raise ValueError(f"unknown test_mode {test_mode!r}; expected 'Full', 'Scale' or 'Crop'")


def prepare_quality_input(rgb: np.ndarray, test_mode: TestMode = "Full") -> np.ndarray:
    """The ``origin`` image of the quality path: the photo on the network grid.

    Resized with PIL ``BILINEAR`` (Pillow's convolution resampler, antialiased when shrinking)
    only when the target size differs from the photo's, then centre-cropped in Crop mode.

    Args:
        rgb: uint8 ``H×W×3`` photo.
        test_mode: ``"Full"`` (run.py's choice), ``"Scale"`` or ``"Crop"``.

    Returns:
        uint8 ``h×w×3``; the input array itself when nothing changes.

    Raises:
        BadImageError: the photo is too small for Full mode (see :func:`full_size`).
    """
    from PIL import Image

    height, width = rgb.shape[:2]
    (target_w, target_h), box = quality_geometry(width, height, test_mode)
    origin = rgb
    if (target_w, target_h) != (width, height):
        origin = np.asarray(Image.fromarray(rgb, "RGB").resize((target_w, target_h),
                                                               Image.BILINEAR))
    if box is not None:
        left, top, right, bottom = box
        origin = np.ascontiguousarray(origin[top:bottom, left:right])
    return origin


# ---------------------------------------------------------------------------------------------
# Scratch path helpers (docs/reference_facts.md#scratch-path)


def dilate_mask(mask: np.ndarray, iterations: int = HR_MASK_DILATION) -> np.ndarray:
    """``cv2.dilate`` with a 3×3 all-ones kernel, ``iterations`` times (outside pixels ignored).

    For a {0,255} mask and 3 iterations this is a 7×7 square max filter.  Works on ``H×W`` and on
    ``H×W×3`` masks.
    """
    import cv2

    if iterations <= 0:
        return mask
    return cv2.dilate(mask, np.ones((3, 3), np.uint8), iterations=iterations)


def synthesize_holes(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Paint the scratches white: ``img*(1 − m/255) + (m/255)*255`` in float64, truncated to uint8.

    Args:
        rgb: uint8 ``H×W×3``.
        mask: uint8 ``H×W`` (applied to every channel) or ``H×W×3``; 255 = scratch.  With a {0,255}
            mask the result is exactly ``rgb`` with 255 wherever the mask is 255.

    Memory: two float64 temporaries of the image (48 bytes per pixel).
    """
    if mask.shape[:2] != rgb.shape[:2]:
        raise ValueError(f"mask {mask.shape[:2]} and image {rgb.shape[:2]} differ in size")
    weight = mask.astype(np.float64) / 255
    if weight.ndim == 2:
        weight = weight[:, :, None]
    holes = rgb * (1 - weight) + weight * 255
    return holes.astype(np.uint8)


def scratch_network_inputs(rgb: np.ndarray, mask: np.ndarray,
                           hr: bool) -> tuple[np.ndarray, "torch.Tensor", "torch.Tensor"]:
    """Hole image and the two network inputs of the scratch path.

    Args:
        rgb: uint8 ``H×W×3`` photo from scratch detection (sides multiples of 16).
        mask: uint8 ``H×W`` {0,255} scratch mask of the same size.
        hr: dilate the mask first (:data:`HR_MASK_DILATION`); the dilated mask is used for both the
            holes and the network.

    Returns:
        ``(holes uint8 H×W×3, x float32 1×3×H×W in [-1,1], mask float32 1×1×H×W in {0,1})``.
    """
    if mask.ndim != 2:
        raise ValueError(f"expected an H×W mask, got shape {mask.shape}")
    if hr:
        mask = dilate_mask(mask, HR_MASK_DILATION)
    holes = synthesize_holes(rgb, mask)
    return holes, to_network(holes), to_tensor(mask)


# ---------------------------------------------------------------------------------------------
# Running the generator


def _run_generator(generator: Generator, x: "torch.Tensor", mask: "torch.Tensor | None",
                   device: Any, tile: int | None = None,
                   log: Callable[[str], None] | None = None) -> "torch.Tensor":
    import torch

    if tile is not None:
        from oldphoto.tiling import run_tiled

        return run_tiled(generator, x, tile, mask=mask, device=device, log=log)
    with torch.inference_mode():
        x = x.to(device)
        generated = generator(x) if mask is None else generator(x, mask.to(device))
        return generated.detach().to("cpu", torch.float32)


def restore_quality(origin: np.ndarray, generator: Generator, device: Any = "cpu", *,
                    tile: int | None = None,
                    log: Callable[[str], None] | None = None) -> tuple[np.ndarray, "torch.Tensor"]:
    """Quality path on a prepared photo (:func:`prepare_quality_input`).

    The generator is called as ``generator(x)`` with ``x`` the [-1,1] ``1×3×h×w`` tensor (the
    official zeros mask is unused by the quality mapping and is not built).  With ``tile`` it runs
    in tiles of that side (:func:`oldphoto.tiling.run_tiled`, approximate; see
    :func:`plan_stage1`).

    Returns:
        ``(input_image, restored)``: the stretched network input (uint8 ``h×w×3``, the official
        ``input_image/``) and the raw generator output (float32 CPU ``1×3×h×w``, in [-1,1]);
        write the latter with :func:`save_restored`.
    """
    x = to_network(origin)
    input_image = official_stretch(x)
    return input_image, _run_generator(generator, x, None, device, tile, log)


def restore_scratch(rgb: np.ndarray, mask: np.ndarray, generator: Generator, hr: bool = False,
                    device: Any = "cpu", *, tile: int | None = None,
                    log: Callable[[str], None] | None = None) -> tuple[np.ndarray, "torch.Tensor"]:
    """Scratch path (standard, or HR with the mask dilated) on the detection-sized photo.

    Args:
        rgb: uint8 ``H×W×3`` image written by scratch detection (sides multiples of 16).
        mask: uint8 ``H×W`` {0,255} mask of the same size
            (:func:`oldphoto.scratch.detect_scratches`).
        generator: called as ``generator(x, mask)`` with the hole image and ``1×1×H×W`` mask.
        hr: the official ``--HR`` behaviour (mask dilated 3×3 × 3 before everything else).
        device: where the generator runs.
        tile: run in tiles of this side (image and mask cut alike; approximate), see
            :func:`plan_stage1`.
        log: called once per tile.

    Returns:
        ``(input_image, restored)`` as in :func:`restore_quality`; ``input_image`` shows the holes.
    """
    _, x, net_mask = scratch_network_inputs(rgb, mask, hr)
    input_image = official_stretch(x)
    return input_image, _run_generator(generator, x, net_mask, device, tile, log)


def stage1_path(with_mask: bool, hr: bool) -> str:
    """``"quality"``, ``"scratch"`` or ``"hr"``: the network path of a stage-1 job."""
    return Mode(with_scratch=with_mask, hr=hr).stage1_path


def plan_stage1(network_rgb: np.ndarray, mask: np.ndarray | None, hr: bool, memory_budget: int,
                attention_budget: int | None = None, force: str = "auto"):
    """Whole image or tiles for one photo within ``memory_budget`` bytes of job memory.

    Args:
        network_rgb: the image the generator sees: the prepared ``origin`` (quality path) or the
            detection-sized photo (scratch paths).
        mask: the scratch mask (``None`` on the quality path); dilated here for the HR estimate.
        hr: HR scratch path.
        memory_budget: bytes the whole job may use (config ``memory_budget_mb``).
        attention_budget: bytes of the non-local attention's chunks (the nets default if None).
        force: ``"auto"``, ``"whole"`` or ``"tiled"`` (benchmarks and tests).

    Returns:
        :class:`oldphoto.tiling.Stage1Plan`: ``plan.tile`` is ``None`` for the whole image (the
        exact official computation) and the tile side otherwise.
    """
    from oldphoto import tiling

    height, width = network_rgb.shape[:2]
    path = stage1_path(mask is not None, hr)
    estimate_mask = dilate_mask(mask, HR_MASK_DILATION) if path == "hr" else None
    # The process as it is now (networks loaded) is the estimate's base, when larger than the model's.
    base = max(tiling.BASE[path], tiling.process_rss() or 0)
    return tiling.plan_stage1(height, width, path, memory_budget, attention_budget=attention_budget,
                              mask=estimate_mask, force=force, base=base)


def save_restored(restored: "torch.Tensor", stretch: Stretch = "official") -> np.ndarray:
    """The restored image as written to ``restored_image/``: uint8 ``H×W×3``.

    ``"official"``: min/max stretch over the whole tensor (bug B2, the official output);
    ``"clamp"``: ``(t + 1)/2`` clamped to [0, 1], no stretch.
    """
    if stretch == "official":
        return official_stretch(restored)
    if stretch == "clamp":
        return clamp_to_uint8(restored)
    raise ValueError(f"unknown stretch {stretch!r}; expected 'official' or 'clamp'")


def restore_image(rgb: np.ndarray, generator: Generator, device: Any = "cpu", *,
                  mask: np.ndarray | None = None, test_mode: TestMode = "Full", hr: bool = False,
                  stretch: Stretch = "official", memory_budget: int | None = None,
                  attention_budget: int | None = None, tiling: str = "auto",
                  log: Callable[[str], None] | None = None) -> RestoredImages:
    """Stage 1 for one photo: the images of ``origin/``, ``input_image/``, ``restored_image/``.

    The one stage-1 computation: the workflow runs it (through
    :func:`oldphoto.stages.restore_global`) and the golden tests check it.

    Args:
        rgb: uint8 ``H×W×3``.  Without ``mask``, the photo as loaded; with ``mask``, the image that
            scratch detection wrote (it is used unchanged).
        generator: the network chain (:func:`global_generator`).
        device: where the generator runs.
        mask: ``None`` for the quality path; the uint8 ``H×W`` {0,255} scratch mask otherwise.
        test_mode: quality-path geometry, ``"Full"`` by default (run.py's choice).
        hr: scratch path only: dilate the mask (the official ``--HR``).
        stretch: how ``restored`` is written (:func:`save_restored`).
        memory_budget: bytes the job may use; a photo whose whole-image estimate exceeds it runs
            in tiles (:func:`plan_stage1`, approximate).  ``None``: always the whole image.
        attention_budget: bytes for the score buffers of one query chunk of the non-local
            attention, given to the generator's mapping network (``None``: its own default).
        tiling: ``"auto"`` (by the budget), ``"whole"`` or ``"tiled"`` (benchmarks, tests).
        log: receives the plan (when ``memory_budget`` is given) and one line per tile.

    Raises:
        BadImageError: the photo is too small for the quality path (``path`` is ``None``).
    """
    if attention_budget is not None:
        set_attention_budget(generator, attention_budget)
    if mask is None:
        origin = prepare_quality_input(rgb, test_mode)
    else:
        origin = rgb
    tile = None
    if memory_budget is not None or tiling != "auto":
        plan = plan_stage1(origin, mask, hr, memory_budget or 0, attention_budget, force=tiling)
        tile = plan.tile
        if log is not None:
            log(f"stage 1: {plan.describe()}")
            if plan.tile is not None and not plan.fits:
                log("warning: the smallest tile's estimate exceeds memory_budget_mb; "
                    "running anyway")
    if mask is None:
        input_image, restored = restore_quality(origin, generator, device, tile=tile, log=log)
    else:
        input_image, restored = restore_scratch(rgb, mask, generator, hr, device, tile=tile,
                                                log=log)
    return RestoredImages(origin, input_image, save_restored(restored, stretch))


def set_attention_budget(generator: Any, nbytes: int) -> None:
    """Give every non-local attention block of ``generator``'s mapping network this budget."""
    mapping = getattr(generator, "mapping", generator)
    modules = mapping.modules() if hasattr(mapping, "modules") else []
    for module in modules:
        if hasattr(module, "attention_budget"):
            module.attention_budget = int(nbytes)
