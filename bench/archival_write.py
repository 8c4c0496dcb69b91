"""Per-photo cost of the archival final output: reading the master, writing the derivative.

The final-output job (``blend_faces``) writes one derivative per photo
(``oldphoto.archival.final.write_final``): read the master (sha256, header, EXIF/IPTC/XMP),
decode it at full precision, build the 16-bit final, encode it (OpenCV PNG, tifffile TIFF, Pillow
JPEG) and write the master's metadata, the ICC profile and the provenance into it.  This measures,
on the generated tagged corpus masters (``tests/archival_corpus.py``, tagged with exiftool, so the
bench needs it) scaled to each ``--megapixels``: ``colour16.tif`` (16-bit, Adobe RGB, every corpus
field) and, in the last row, ``sepia_print.png`` (8-bit, like the bundled samples):

* ``read_master``;
* ``write_derivative`` per format and bit depth (encode + metadata), and the metadata pass alone
  on an encoded 16-bit PNG (libexiv2 in memory; before this change: exiftool rewriting the file);
* ``write_final`` to PNG: the whole archival step of the job, from the restoration's 8-bit result
  to the file on disk (what ``blend_faces`` spends beyond compositing and the report's views);
* ``atomic.write_png`` of the same 8-bit image without metadata, for comparison.

Every row is the median of ``--repeat`` calls after one warm-up call (a warm worker's state).
The code measured is whatever ``oldphoto`` this Python imports: run it with
``PYTHONPATH=<another checkout>/src`` to measure another version (the before/after figures in
``bench/results/archival_write.md`` were taken that way, same machine, one after the other).

    .venv/bin/python bench/archival_write.py [--megapixels 0.3 2] [--repeat 5] [--label TEXT]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _common import machine_info, machine_markdown, median_time  # noqa: E402


def _metadata_pass(folder: Path, master, final, record):
    """The metadata step alone on an encoded 16-bit PNG: libexiv2 in memory (this change), or,
    in the code before it, exiftool rewriting the encoded file in place."""
    from oldphoto.archival import derivative

    samples = derivative._samples(final, None, 16)
    size = (samples.shape[1], samples.shape[0])
    try:
        from oldphoto.archival.metadata import write_metadata
    except ImportError:  # before: the long-lived exiftool, as write_derivative ran it
        target = folder / "exiftool-pass.png"
        target.write_bytes(derivative._encode_png(samples))
        tags = derivative.derivative_tags(master, record, master.dpi, "png", size)
        return lambda: derivative._write_tags(target, tags, master.icc_profile, target)
    encoded = derivative._png_chunks(derivative._encode_png(samples), master.icc_profile,
                                     master.dpi, None)
    carried = derivative.derivative_metadata(master, record, master.dpi, "png", size, "0" * 64)
    return lambda: write_metadata(encoded, carried)


def _rows(folder: Path, megapixels: float, repeat: int) -> tuple[str, list[tuple[str, float]]]:
    from archival_corpus import make_corpus
    from oldphoto.archival import (final_16bit, provenance_record, read_master,
                                   read_master_pixels16, to_working_srgb, write_derivative)
    from oldphoto.archival.final import write_final
    from oldphoto.atomic import write_png
    from oldphoto.decode import read_image

    width = int(round((megapixels * 1e6 * 4 / 3) ** 0.5))
    height = int(round(width * 3 / 4))
    folder.mkdir(parents=True)
    corpus = make_corpus(folder / "in", height=height, width=width)
    master_path = corpus["colour16.tif"].path
    print8 = corpus["sepia_print.png"].path
    master = read_master(master_path)
    master16 = read_master_pixels16(master_path)
    working = to_working_srgb(read_image(master_path).rgb, master.icc_profile)
    final = final_16bit(master16, working, master.icc_profile)
    record = provenance_record(master, backend="classical", checkpoints={}, settings={})

    def timed(fn) -> float:
        fn()  # warm-up: imports, the metadata library's first use, caches
        return median_time(fn, repeat)

    rows = [("read_master", timed(lambda: read_master(master_path))),
            ("atomic.write_png 8-bit, no metadata",
             timed(lambda: write_png(folder / "plain.png", working)))]
    for fmt, bits in (("png", 16), ("tiff", 16), ("jpeg", 8), ("png", 8)):
        out = folder / f"out-{bits}.{fmt}"
        rows.append((f"write_derivative {fmt} {bits}-bit", timed(
            lambda: write_derivative(out, final, fmt=fmt, bits=bits, master=master,
                                     provenance=record))))
    rows.append(("metadata pass alone, png 16-bit", timed(_metadata_pass(folder, master, final,
                                                                   record))))
    rows.append(("write_final png (the job's archival step)", timed(
        lambda: write_final(folder / "final.png", working, master_path=master_path, alpha=None,
                            backend="classical", checkpoints={}, settings={"tone": "official"}))))
    working8 = read_image(print8).rgb
    rows.append(("write_final png, 8-bit PNG master", timed(
        lambda: write_final(folder / "final8.png", working8, master_path=print8, alpha=None,
                            backend="classical", checkpoints={}, settings={"tone": "official"}))))
    return f"{width}x{height}", rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, nargs="+", default=[0.3, 2.0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--label", default="", help="what is measured (printed in the heading)")
    args = parser.parse_args()

    import oldphoto

    tables = []
    with tempfile.TemporaryDirectory(prefix="oldphoto-bench-archival-") as tmp:
        for k, megapixels in enumerate(args.megapixels):
            tables.append(_rows(Path(tmp) / str(k), megapixels, args.repeat))
    sizes = [size for size, _ in tables]
    print(f"## archival derivative write{': ' + args.label if args.label else ''}\n")
    print(f"16-bit Adobe RGB TIFF master (last row: 8-bit PNG), {' and '.join(sizes)}; "
          f"seconds, median of {args.repeat} after a warm-up call; oldphoto from "
          f"`{Path(oldphoto.__file__).parent}`\n")
    print("| step | " + " | ".join(sizes) + " |")
    print("| --- |" + " --- |" * len(sizes))
    for i, (name, _) in enumerate(tables[0][1]):
        print(f"| {name} | " + " | ".join(f"{rows[i][1]:.4f}" for _, rows in tables) + " |")
    print()
    print(machine_markdown(machine_info()))


if __name__ == "__main__":
    main()
