"""The image wildcard constraint (dag.stems_regex): exactly the known stems, short."""

from __future__ import annotations

import random
import re

import pytest

from oldphoto.dag import stems_regex


def matcher(stems):
    return re.compile(r"(?:" + stems_regex(stems) + r")\Z")


@pytest.mark.parametrize("seed", range(20))
def test_matches_exactly_the_stems(seed):
    rng = random.Random(seed)
    alphabet = "ab_1-2 .é]^\\[x"
    stems = {"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6)))
             for _ in range(rng.randint(1, 40))}
    regex = matcher(stems)
    for stem in stems:
        assert regex.match(stem), (stem, stems_regex(stems))
    for _ in range(400):
        other = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 7)))
        assert bool(regex.match(other)) == (other in stems), (other, stems_regex(stems))


def test_prefix_stems_and_snakemake_context():
    stems = ["a", "a_1", "a_12", "b (2)", "IMG_0001", "IMG_0002"]
    # as Snakemake embeds it: the stage-3 output {image}_{face}.png with face \d+
    regex = re.compile(r"faces/(?P<image>" + stems_regex(stems) + r")_(?P<face>\d+)\.png$")
    assert regex.match("faces/a_1_2.png").group("image", "face") == ("a_1", "2")
    assert regex.match("faces/a_12.png").group("image") in ("a", "a_1")
    assert regex.match("faces/IMG_0002_3.png").group("image") == "IMG_0002"
    assert not regex.match("faces/IMG_0003_3.png")
    assert "{" not in stems_regex(stems) and "}" not in stems_regex(stems)  # Snakemake's parser


def test_numbered_scans_stay_short():
    stems = [f"scan {k:05d}" for k in range(10000)]
    assert len(stems_regex(stems)) < 50
    assert matcher(stems).match("scan 09999") and not matcher(stems).match("scan 10000")


def test_no_stems_matches_nothing():
    assert not matcher([]).match("") and not matcher([]).match("x")
