"""JAX's persistent compilation cache, on by default for bayesmoe's fits.

Compiling NUTS is most of a fit's time (ENV.md: about 4.5 of 6.5 s on the joint law); JAX's
on-disk cache (``jax_compilation_cache_dir``) skips it when the same program runs again, e.g.
a refit of the same table with another seed or more draws' worth of reruns.

Where: ``$BAYESMOE_CACHE_DIR/jax`` if set, else ``$XDG_CACHE_HOME/bayesmoe/jax``, else
``~/.cache/bayesmoe/jax``. Off: ``BAYESMOE_NO_COMPILE_CACHE=1``. A cache the user configured
for JAX already (``JAX_COMPILATION_CACHE_DIR`` or ``jax.config.update``) is left as it is.
JAX treats the cache as trusted code: do not point it at a folder others can write.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

__all__ = ["cache_dir", "enable_compile_cache"]

log = logging.getLogger("bayesmoe")

_OFF_VALUES = ("", "0", "false", "no")


def cache_dir() -> Path:
    """bayesmoe's cache folder: ``$BAYESMOE_CACHE_DIR``, else the user's cache directory."""
    if os.environ.get("BAYESMOE_CACHE_DIR"):
        return Path(os.environ["BAYESMOE_CACHE_DIR"]).expanduser()
    # no dependency provides platformdirs; XDG's rule is the one that applies on Linux and is
    # a harmless choice elsewhere
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "bayesmoe"


def enable_compile_cache() -> Path | None:
    """Point JAX's persistent compilation cache at :func:`cache_dir` unless told otherwise.

    Call before the first compilation worth caching (``run_nuts`` does). Returns the folder in
    use (the user's own if they configured one), or ``None`` when the cache is off. A folder that
    cannot be created leaves the cache off with a logged note: a fit never fails for it.
    """
    if os.environ.get("BAYESMOE_NO_COMPILE_CACHE", "").strip().lower() not in _OFF_VALUES:
        return None
    import jax

    own = jax.config.jax_compilation_cache_dir
    if own:
        return Path(own)
    if not jax.config.jax_enable_compilation_cache:  # switched off on purpose in JAX's config
        return None
    path = cache_dir() / "jax"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        log.info("bayesmoe: no compilation cache (%s); set BAYESMOE_CACHE_DIR to a writable folder", err)
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    # JAX caches only programs that took >= 1 s to compile by default; a fit compiles ~100 small
    # ones (a Chinchilla fit: 111 programs, 20 s, most under 1 s), so cache every program, as
    # JAX's own guide does (docs.jax.dev, "Persistent compilation cache", quick start)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return path
