"""Per-photo cost of writing an archival derivative (exiftool metadata pass) vs a plain PNG.

The final-output job writes one derivative per photo: encode (OpenCV PNG, tifffile TIFF, Pillow
JPEG), then one exiftool process writes the master's EXIF/IPTC/XMP, the ICC profile and the
provenance.  This measures, on a generated tagged 16-bit master of ``--megapixels``:

* ``read_master``: sha256 + Pillow header + two exiftool reads (tags JSON, IPTC and XMP blocks);
* ``write_derivative`` per format and bit depth, median of ``--repeat``;
* ``imageio.write_png`` of the same image at 8 bits (today's final output) for comparison;
* exiftool alone (``exiftool -ver``): the interpreter start every call pays.

    .venv/bin/python bench/archival_write.py [--megapixels 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _common import machine_info, machine_markdown, median_time  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from archival_corpus import make_corpus
    from oldphoto.archival import (final_16bit, provenance_record, read_master,
                                   read_master_pixels16, to_working_srgb, write_derivative)
    from oldphoto.atomic import write_png
    from oldphoto.decode import read_image

    width = int(round((args.megapixels * 1e6 * 4 / 3) ** 0.5))
    height = int(round(width * 3 / 4))
    with tempfile.TemporaryDirectory(prefix="oldphoto-bench-archival-") as tmp:
        folder = Path(tmp)
        master_path = make_corpus(folder / "in", height=height, width=width)["colour16.tif"].path
        master = read_master(master_path)
        master16 = read_master_pixels16(master_path)
        working = to_working_srgb(read_image(master_path).rgb, master.icc_profile)
        final = final_16bit(master16, working, master.icc_profile)
        record = provenance_record(master, backend="classical", checkpoints={}, settings={})
        rows = [("exiftool start (-ver)",
                 median_time(lambda: subprocess.run(["exiftool", "-ver"], capture_output=True,
                                                    check=True), args.repeat)),
                ("read_master", median_time(lambda: read_master(master_path), args.repeat)),
                ("imageio.write_png 8-bit (today)",
                 median_time(lambda: write_png(folder / "plain.png", working), args.repeat))]
        for fmt, bits in (("png", 16), ("tiff", 16), ("jpeg", 8), ("png", 8)):
            out = folder / f"out-{bits}.{fmt}"
            rows.append((f"write_derivative {fmt} {bits}-bit", median_time(
                lambda: write_derivative(out, final, fmt=fmt, bits=bits, master=master,
                                         provenance=record), args.repeat)))
    print(f"## archival derivative write, {width}x{height} 16-bit master "
          f"(median of {args.repeat})\n")
    print("| step | seconds |\n| --- | --- |")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.3f} |")
    print()
    print(machine_markdown(machine_info()))


if __name__ == "__main__":
    main()
