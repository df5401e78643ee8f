# SPDX-License-Identifier: AGPL-3.0-or-later
"""Handwriting fonts for synthetic training images (letters and expressions).

Training draws on Debian's handwriting font packages (prior-art §8), installed with
``apt-get install fonts-dkg-handwriting fonts-sjfonts ...`` (docs/models.md), and never
on the fonts in Plom's wheel: the demo writes its students' answers in those, so a model
trained on them would be tested on hands it has seen.
"""

from __future__ import annotations

from pathlib import Path

#: Debian's handwriting fonts used for training (prior-art §8), without the hands that
#: write only capitals (Humor Sans, BecauseWe{Build,Learn,Mentor}).  Four of these still
#: draw a capital-shaped or garbled lower case: see :data:`CAPITALS_ONLY`.
DEBIAN_HANDWRITING_FONTS = (
    "/usr/share/fonts/truetype/fifthhorseman/dkg.ttf",
    "/usr/share/fonts/truetype/sjfonts/Delphine.ttf",
    "/usr/share/fonts/truetype/sjfonts/SteveHand.ttf",
    "/usr/share/fonts/truetype/breip/Breip.ttf",
    "/usr/share/fonts/opentype/bwht/BecauseWeConnect-Regular.otf",
    "/usr/share/fonts/opentype/bwht/BecauseWeCreate-Regular.otf",
    "/usr/share/fonts/opentype/bwht/BecauseWeOrganize-Regular.otf",
    "/usr/share/fonts/truetype/femkeklaver/femkeklaver.ttf",
    "/usr/share/fonts/truetype/rufscript/Rufscript010.ttf",
    "/usr/share/fonts/opentype/comic-neue/ComicNeue-Regular.otf",
    "/usr/share/fonts/opentype/dancingscript/DancingScript-Regular.otf",
    "/usr/share/fonts/opentype/kaushanscript/KaushanScript-Regular.otf",
    "/usr/share/fonts/truetype/kristi/Kristi.ttf",
    "/usr/share/fonts/truetype/ecolier-court/Ecolier-court.ttf",
    "/usr/share/fonts/truetype/tomsontalks/TomsonTalks.ttf",
)


#: Fonts whose lower case is capital-shaped or garbled (seen on a contact sheet of
#: every font's A-F / a-f): take only capitals from them.
CAPITALS_ONLY = frozenset(
    {
        "BecauseWeConnect-Regular.otf",
        "BecauseWeCreate-Regular.otf",
        "BecauseWeOrganize-Regular.otf",
        "Ecolier-court.ttf",
    }
)


def font_files(spec: str | None) -> list[Path]:
    """Font files named by ``spec``.

    ``spec`` is a folder (searched for .ttf/.otf), a comma-separated list of files, or
    ``"debian"``: those of :data:`DEBIAN_HANDWRITING_FONTS` that are installed.
    """
    if not spec:
        return []
    if spec == "debian":
        return [Path(p) for p in DEBIAN_HANDWRITING_FONTS if Path(p).is_file()]
    folder = Path(spec)
    if folder.is_dir():
        return sorted(p for p in folder.rglob("*") if p.suffix in (".ttf", ".otf"))
    files = [Path(p) for p in spec.split(",")]
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"no such font file: {', '.join(missing)}")
    return files
