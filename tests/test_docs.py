"""Every shell command and Python block of the README and docs/*.md runs as written, on a fresh
copy of the tree, and leaves every tracked file as it was.

A block's marker, an HTML comment on the line before it, says how it runs:

* ``<!-- doc-test: slow (reason) -->``: only with ``pytest -m slow`` (full NUTS fits, SBC);
* ``<!-- doc-test: fast-flags ARGS -->``: by default with ARGS appended to each command (tiny
  NUTS settings) and the extrapolation term's growth rate from its prior
  (``BAYESMOE_DISCREPANCY=prior``: no backtest refits); with ``-m slow`` as written, the way a
  reader runs it;
* ``<!-- doc-test: skip (reason) -->``: never (the README's own test command, which is this suite);
* ``writes PATH`` (after ``;``): the block regenerates tracked files under PATH on purpose;
* ``extended`` (after ``;``): in CI's extended pass (``pytest -m extended``), not the default suite.

Unmarked blocks run in the default suite as written. The install prefix
``python3 -m venv .venv && .venv/bin/pip install -e ... &&`` is what the environment running these
tests already did, so it is dropped, and ``.venv/bin/X`` runs this interpreter's ``X``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```(bash|sh|python)\s*$")
_MARK = re.compile(r"^<!--\s*doc-test:\s*(.*?)\s*-->\s*$")
_VENV = re.compile(r"(?<![\w/.])\.venv/bin/(bayesmoe|python) ")
_INSTALL = re.compile(r"^python3 -m venv \.venv && \.venv/bin/pip install -e \S+ && ")


@dataclass
class Block:
    path: Path
    line: int
    lang: str
    text: str
    mode: str = "run"  # run | slow | skip
    reason: str = ""
    fast_flags: str = ""
    writes: tuple[str, ...] = ()
    extended: bool = False  # in CI's extended pass, not the default suite

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks() -> list[Block]:
    found = []
    for path in DOCS:
        lines = path.read_text().splitlines()
        i = 0
        while i < len(lines):
            m = _FENCE.match(lines[i])
            if not m:
                i += 1
                continue
            j = i + 1
            while not lines[j].startswith("```"):
                j += 1
            block = Block(path, i + 1, "python" if m.group(1) == "python" else "bash", "\n".join(lines[i + 1:j]))
            k = i - 1
            while k >= 0 and not lines[k].strip():
                k -= 1
            mark = _MARK.match(lines[k]) if k >= 0 else None
            for part in (p.strip() for p in (mark.group(1).split(";") if mark else ())):
                word, _, rest = part.partition(" ")
                if word in ("slow", "skip"):
                    block.mode, block.reason = word, rest.strip("() ")
                elif word == "fast-flags":
                    block.fast_flags = rest
                elif word == "writes":
                    block.writes += (rest.strip(),)
                elif word == "extended":
                    block.extended = True
                else:
                    raise ValueError(f"{block.id}: unknown doc-test marker {part!r}")
            found.append(block)
            i = j + 1
    return found


def commands(block: Block, fast: bool) -> list[str]:
    """The block's shell commands (continuations joined), made to run on this interpreter."""
    joined = block.text.replace("\\\n", " ")
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        line = _INSTALL.sub("", line)
        assert ".venv/bin/pip" not in line, f"{block.id}: an install step the test cannot run: {line}"
        line = _VENV.sub(lambda m: f"{sys.executable}{' -m bayesmoe.cli' if m.group(1) == 'bayesmoe' else ''} ", line)
        if fast and block.fast_flags:
            cmd, hash_, comment = line.partition("   # ")
            line = f"{cmd.rstrip()} {block.fast_flags}" + (f"   # {comment}" if hash_ else "")
        out.append(line)
    return out


ALL = blocks()


def _param(block: Block):
    marks = [pytest.mark.slow] if block.mode == "slow" else [pytest.mark.extended] if block.extended else []
    return pytest.param(block, id=block.id, marks=marks)


@pytest.fixture(scope="module")
def fresh_tree(tmp_path_factory) -> Path:
    """A copy of the tree as git sees it (tracked and unignored files), committed, so that
    ``git status`` after each block shows anything a command wrote outside ignored paths."""
    tree = tmp_path_factory.mktemp("fresh") / "bayesmoe"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            dst = tree / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    git = ["git", "-c", "user.name=doc-test", "-c", "user.email=doc-test@localhost"]
    subprocess.run([*git, "init", "-q"], cwd=tree, check=True)
    subprocess.run([*git, "add", "-A"], cwd=tree, check=True)
    subprocess.run([*git, "commit", "-qm", "fresh tree"], cwd=tree, check=True)
    return tree


def _env(tree: Path) -> dict:
    # The session's compilation cache (tests/conftest.py: a fresh folder outside the tree), shared
    # with the CLI tests: README.md:17 and docs/quickstart.md:23 with their fast flags compile the
    # same programs as tests/test_cli.py's main job. It only saves compiling; draws are the same
    # with or without it (tests/test_fit.py::test_same_seed_gives_bit_identical_draws_in_two_processes).
    return {"CI": "1", "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHONPATH": str(tree),
            "HOME": str(tree.parent), "BAYESMOE_CACHE_DIR": os.environ["BAYESMOE_CACHE_DIR"]}


def test_every_block_is_found_and_marked_knowingly():
    ids = [b.id for b in ALL]
    assert len(ids) == len(set(ids)) and len(ALL) >= 12
    readme = [b for b in ALL if b.path.name == "README.md"]
    main_job = readme[0]
    assert "--out results/reference_joint.nc" in main_job.text and main_job.fast_flags and main_job.mode == "run"
    for b in ALL:
        if b.mode != "run":
            assert b.reason, f"{b.id}: a {b.mode} block says why"


@pytest.mark.parametrize("block", [_param(b) for b in ALL])
def test_doc_block_runs_as_written(block: Block, fresh_tree: Path, request):
    if block.mode == "skip":
        pytest.skip(f"{block.id}: {block.reason}")
    fast = "slow" not in (request.config.getoption("-m") or "") or "not slow" in request.config.getoption("-m")
    env = _env(fresh_tree)
    if fast and block.fast_flags:
        env["BAYESMOE_DISCREPANCY"] = "prior"
    if block.lang == "python":
        runs = [[sys.executable, "-c", block.text]]
    else:
        runs = [["bash", "-c", cmd] for cmd in commands(block, fast)]
    for argv in runs:
        proc = subprocess.run(argv, cwd=fresh_tree, env=env, capture_output=True, text=True, timeout=1800)
        validate = "bayesmoe.cli validate" in argv[-1] and "compare" not in argv[-1]
        # with tiny NUTS settings a calibration check may fail (exit 1), but it must run to its verdict
        ok = proc.returncode == 0 or (fast and block.fast_flags and validate and proc.returncode == 1
                                       and "(bar " in proc.stdout)
        assert ok, f"{block.id}: {argv[-1][:300]}\nexit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    status = subprocess.run(["git", "status", "--porcelain"], cwd=fresh_tree, capture_output=True, text=True,
                            check=True).stdout.splitlines()
    changed = [s for s in status if not any(s[3:].startswith(w) for w in block.writes)]
    assert changed == [], f"{block.id} changed or left unignored files in the tree: {changed}"
