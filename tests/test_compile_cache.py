"""bayesmoe.compile_cache: where JAX's persistent cache goes, and when bayesmoe leaves it alone.

Each case runs in a fresh process: JAX's configuration is global to a process."""

import os
import subprocess
import sys

CODE = (
    "import jax\n"
    "from bayesmoe.compile_cache import enable_compile_cache\n"
    "print(enable_compile_cache()); print(jax.config.jax_compilation_cache_dir)\n"
)


def run(env_extra, code=CODE):
    env = {k: v for k, v in os.environ.items()
           if k not in ("BAYESMOE_CACHE_DIR", "BAYESMOE_NO_COMPILE_CACHE", "JAX_COMPILATION_CACHE_DIR")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**env, **env_extra},
                          check=True)
    return proc.stdout.split("\n")[:2]


def test_default_is_the_users_cache_directory(tmp_path):
    assert run({"XDG_CACHE_HOME": str(tmp_path)}) == [str(tmp_path / "bayesmoe" / "jax")] * 2
    assert (tmp_path / "bayesmoe" / "jax").is_dir()


def test_bayesmoe_cache_dir_moves_it(tmp_path):
    assert run({"BAYESMOE_CACHE_DIR": str(tmp_path / "c")}) == [str(tmp_path / "c" / "jax")] * 2


def test_opt_out_leaves_jax_without_a_cache(tmp_path):
    assert run({"BAYESMOE_NO_COMPILE_CACHE": "1", "XDG_CACHE_HOME": str(tmp_path)}) == ["None", "None"]
    assert not (tmp_path / "bayesmoe").exists()


def test_a_cache_the_user_configured_is_kept(tmp_path):
    mine = str(tmp_path / "mine")
    assert run({"JAX_COMPILATION_CACHE_DIR": mine, "BAYESMOE_CACHE_DIR": str(tmp_path / "c")}) == [mine, mine]
    code = ("import jax\njax.config.update('jax_compilation_cache_dir', " + repr(mine) + ")\n" + CODE)
    assert run({"BAYESMOE_CACHE_DIR": str(tmp_path / "c")}, code) == [mine, mine]
    assert not (tmp_path / "c").exists()
