"""Text for the reference runs: byte-level tokens from English text that installs offline.

Sources, in order of preference (``--corpus auto``):

``gcide``
    The GNU Collaborative International Dictionary of English (GPL-2+), from Debian's
    ``dict-gcide`` package; about 30 MB of English once pronunciations, source tags and markup
    are stripped. Never commit it: ``reference_runs/text/`` is git-ignored.
``austen``
    Jane Austen's six novels (public domain), from Debian's ``r-cran-janeaustenr``.
``sample``
    A small public-domain sample bundled in ``reference_runs/sample.txt`` (the opening chapters of
    *Pride and Prejudice*) so tests need no package. Far too small for the calibration table.

``prepare_text.sh`` holds the exact commands that fetch and unpack the packages; this module
turns them into ``text/gcide.txt`` and ``text/austen.txt`` (``python -m reference_runs.data``).

The held-out split is fixed and interleaved: the text is cut into blocks of ``BLOCK_BYTES`` and
every ``HELDOUT_EVERY``-th block is held out, so the alphabetical dictionary contributes every
letter to both sides. The reported eval loss always uses the first ``eval_tokens`` windows of the
held-out side, cut at fixed offsets, so every run is scored on the same bytes.
"""

from __future__ import annotations

import argparse
import gzip
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
TEXT_DIR = HERE / "text"
SAMPLE_PATH = HERE / "sample.txt"
GCIDE_DZ = Path("unpacked/usr/share/dictd/gcide.dict.dz")
AUSTEN_RDB = Path("unpacked/usr/lib/R/site-library/janeaustenr/data/Rdata.rdb")
VOCAB_SIZE = 256  # byte-level tokens
BLOCK_BYTES = 65_536
HELDOUT_EVERY = 20  # 5 % of the text is held out

# --------------------------------------------------------------------------- GCIDE cleaning
_FIRST_ENTRY = re.compile(r"^0 \\0\\", re.M)
_TAG_LINE = re.compile(r"^\s*\[[^\]\n]*\]\s*$")  # "[1913 Webster]", "[WordNet 1.5 +PJC]"
_PRONUNCIATION = re.compile(r"\s*\\[^\\\n]*\\")  # "Feel \Feel\, n." -> "Feel, n."
_ACCENT = re.compile(r"\[[=~'\"\.\-]?([a-zA-Z]{1,2})[\^`]?\]")  # "[ae]", "['e]", "[i^]" -> letters
_SPACES = re.compile(r"[ \t]{2,}")


def clean_gcide(raw: str) -> str:
    """Strip the dictd header, pronunciations, source tags and markup from GCIDE text.

    Lines of one paragraph are joined with spaces; paragraphs are separated by one newline.
    """
    start = _FIRST_ENTRY.search(raw)
    raw = raw[start.start():] if start else raw
    paragraphs, current = [], []
    for line in raw.splitlines():
        if not line.strip():
            if current:
                paragraphs.append(" ".join(current))
                current = []
            continue
        if _TAG_LINE.match(line):
            continue
        line = _PRONUNCIATION.sub("", line)
        line = _ACCENT.sub(r"\1", line).replace("{", "").replace("}", "")
        line = _SPACES.sub(" ", line.strip())
        if line:
            current.append(line)
    if current:
        paragraphs.append(" ".join(current))
    return "\n".join(paragraphs) + "\n"


# --------------------------------------------------------------------------- Austen (R data)
def _r_strings(buf: bytes) -> list[str] | None:
    """The strings of an R-serialised (XDR) top-level character vector, or None if not one."""
    if buf[:2] != b"X\n":
        return None
    pos = 2
    version = struct.unpack(">i", buf[pos:pos + 4])[0]
    pos += 12  # format version, writer R version, minimal reader R version
    if version == 3:
        (n,) = struct.unpack(">i", buf[pos:pos + 4])
        pos += 4 + n  # native encoding name
    (flags,) = struct.unpack(">i", buf[pos:pos + 4])
    pos += 4
    if flags & 0xFF != 16:  # STRSXP
        return None
    (length,) = struct.unpack(">i", buf[pos:pos + 4])
    pos += 4
    out = []
    for _ in range(length):
        (_flags, n) = struct.unpack(">ii", buf[pos:pos + 8])
        pos += 8
        if n < 0:  # NA_character_
            out.append("")
            continue
        out.append(buf[pos:pos + n].decode("utf-8", errors="replace"))
        pos += n
    return out


def extract_austen(rdb: Path) -> str:
    """The six novels from janeaustenr's lazy-load database (4-byte length + zlib records)."""
    data = rdb.read_bytes()
    pos, books = 0, []
    while pos + 4 < len(data):
        d = zlib.decompressobj()
        obj = d.decompress(data[pos + 4:])
        consumed = len(data) - pos - 4 - len(d.unused_data)
        pos += 4 + consumed
        lines = _r_strings(obj)
        if lines is not None and len(lines) > 1000:  # the novels; skips small vectors
            books.append("\n".join(lines))
    return "\n\n".join(books) + "\n"


def prepare(text_dir: Path = TEXT_DIR) -> dict[str, int]:
    """Write ``gcide.txt`` and ``austen.txt`` in ``text_dir`` from the unpacked .deb files."""
    sizes = {}
    dz = text_dir / GCIDE_DZ
    if dz.exists():
        with gzip.open(dz, "rt", encoding="utf-8", errors="replace") as f:  # dictzip is gzip
            text = clean_gcide(f.read())
        (text_dir / "gcide.txt").write_text(text, encoding="utf-8")
        sizes["gcide"] = len(text.encode())
    rdb = text_dir / AUSTEN_RDB
    if rdb.exists():
        text = extract_austen(rdb)
        (text_dir / "austen.txt").write_text(text, encoding="utf-8")
        sizes["austen"] = len(text.encode())
    return sizes


# --------------------------------------------------------------------------- corpus + batches
@dataclass
class Corpus:
    """Byte tokens, split once into train and held-out (uint8 tensors on the CPU)."""

    name: str
    train: torch.Tensor
    heldout: torch.Tensor

    def batch(self, generator: torch.Generator, batch_size: int, seq_len: int):
        """Random training windows: inputs and next-byte targets, each (batch, seq_len) int64."""
        starts = torch.randint(0, len(self.train) - seq_len - 1, (batch_size,),
                               generator=generator)
        idx = starts[:, None] + torch.arange(seq_len + 1)
        w = self.train[idx].long()
        return w[:, :-1], w[:, 1:]

    def eval_windows(self, eval_tokens: int, seq_len: int):
        """The fixed held-out windows (non-overlapping, from the start of the held-out text)."""
        n = max(1, eval_tokens // seq_len)
        n = min(n, (len(self.heldout) - 1) // seq_len)
        w = self.heldout[: n * seq_len + 1].long()
        x = w[:-1].view(n, seq_len)
        y = w[1:].view(n, seq_len)
        return x, y


def split_bytes(data: bytes) -> tuple[torch.Tensor, torch.Tensor]:
    """Interleaved fixed split: every HELDOUT_EVERY-th block of BLOCK_BYTES is held out."""
    t = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    block = BLOCK_BYTES if len(t) >= BLOCK_BYTES * HELDOUT_EVERY * 2 else max(
        256, len(t) // (HELDOUT_EVERY * 4))
    n_blocks = len(t) // block
    ids = torch.arange(n_blocks)
    held = ids % HELDOUT_EVERY == HELDOUT_EVERY - 1
    blocks = t[: n_blocks * block].view(n_blocks, block)
    return blocks[~held].reshape(-1).clone(), blocks[held].reshape(-1).clone()


def corpus_path(name: str, text_dir: Path = TEXT_DIR) -> Path:
    """Where the text named ``name`` lives."""
    if name == "sample":
        return SAMPLE_PATH
    return text_dir / f"{name}.txt"


def resolve_corpus(name: str = "auto", text_dir: Path = TEXT_DIR) -> str:
    """``auto`` -> the first of gcide, austen, sample that exists on disk."""
    if name != "auto":
        return name
    for cand in ("gcide", "austen"):
        if corpus_path(cand, text_dir).exists():
            return cand
    return "sample"


def load_corpus(name: str = "auto", text_dir: Path = TEXT_DIR) -> Corpus:
    """Load and split a corpus; see the module docstring for the names."""
    name = resolve_corpus(name, text_dir)
    path = corpus_path(name, text_dir)
    if not path.exists():
        raise FileNotFoundError(
            f"corpus {name!r} not found at {path}; run reference_runs/prepare_text.sh "
            "(or pass --corpus sample for the bundled sample)")
    train, heldout = split_bytes(path.read_bytes())
    return Corpus(name, train, heldout)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--text-dir", type=Path, default=TEXT_DIR,
                   help="folder holding unpacked/ from prepare_text.sh; outputs go here too")
    args = p.parse_args(argv)
    for name, n in prepare(args.text_dir).items():
        print(f"{name}: {n / 1e6:.1f} MB -> {args.text_dir / (name + '.txt')}")


if __name__ == "__main__":
    main()
