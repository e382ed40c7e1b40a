"""Closed-form checks against LAWS.md "Numbers a test can reproduce"."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayesmoe.laws import CHINCHILLA, FINE_GRAINED, JOINT, PUBLISHED, SPARSITY, e_hat

J = PUBLISHED["joint"]["ludziejewski2025"]


@pytest.fixture(scope="module", autouse=True)
def x64():
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", False)


def test_row1_e_hat():
    got = [float(e_hat(E, J["e_start"], J["e_max"])) for E in (1, 2, 4, 8, 16, 32)]
    np.testing.assert_allclose(got, [2.0732, 3.0556, 5.0005, 8.8124, 16.1386, 29.7042], atol=1e-4)
    assert float(e_hat(1e9, J["e_start"], J["e_max"])) == pytest.approx(J["e_max"], rel=1e-6)


# Table 4 of arXiv:2502.05172: E, m, mu, n, nu
TABLE4 = [
    (1, 30.3640, -0.1817, 53.9838, -0.1965),
    (2, 27.7982, -0.1780, 66.8401, -0.2065),
    (4, 24.8462, -0.1731, 87.7022, -0.2192),
    (8, 21.8330, -0.1676, 119.9126, -0.2338),
    (16, 19.0159, -0.1617, 167.5073, -0.2494),
    (32, 16.5424, -0.1557, 234.6726, -0.2652),
]


@pytest.mark.parametrize(("E", "m", "mu", "n", "nu"), TABLE4)
def test_row2_per_e_reduction(E, m, mu, n, nu):
    """At fixed E the law is Chinchilla-shaped; read m, µ, n, ν off the law itself."""
    p = {k: jnp.asarray(v) for k, v in J.items()}
    c = J["c"]

    def term(n_active, tokens):
        return JOINT.loss(p, {"n_active": n_active, "tokens": tokens, "experts": jnp.asarray(float(E))}) - c

    big = 1e30  # makes the other term vanish against the one being read
    n1, n2 = 1e8, 1e10
    t1, t2 = term(jnp.asarray(n1), jnp.asarray(big)), term(jnp.asarray(n2), jnp.asarray(big))
    got_mu = float(np.log(t2 / t1) / np.log(n2 / n1))
    got_m = float(t1 / n1**got_mu)
    assert got_mu == pytest.approx(mu, abs=2e-4)
    assert got_m == pytest.approx(m, rel=5e-3)
    d1, d2 = 1e9, 1e11
    s1, s2 = term(jnp.asarray(big), jnp.asarray(d1)), term(jnp.asarray(big), jnp.asarray(d2))
    got_nu = float(np.log(s2 / s1) / np.log(d2 / d1))
    assert got_nu == pytest.approx(nu, abs=2e-4)
    assert float(s1 / d1**got_nu) == pytest.approx(n, rel=5e-3)


def test_row10_joint_law_values():
    p = {k: jnp.asarray(v) for k, v in J.items()}
    for E, want in ((1.0, 2.577600), (8.0, 2.508777)):
        x = {"n_active": jnp.asarray(1e9), "tokens": jnp.asarray(2e10), "experts": jnp.asarray(E)}
        assert float(JOINT.loss(p, x)) == pytest.approx(want, abs=1e-6)


def test_fine_grained_table2_losses_within_printed_tolerance():
    """LAWS.md row 14: Table 2 losses, N = d²(8·64+4)·n_blocks, ±0.03 (rounded coefficients)."""
    rows = [  # N_act, D, G, loss
        (100e6, 4.37e9, 8, 3.133), (1e9, 28.94e9, 16, 2.491), (3e9, 72.90e9, 16, 2.245),
        (7e9, 137.60e9, 32, 2.076), (70e9, 941.07e9, 32, 1.694),
    ]
    p = {k: jnp.asarray(v) for k, v in PUBLISHED["fine_grained"]["krajewski2024"].items()}
    for n_act, tokens, g, want in rows:
        # N_act = 12·d²·n_blocks with d = 64·n_blocks; the law takes N = d²(8E+4)·n_blocks
        n_blocks = (n_act / (12 * 64**2)) ** (1 / 3)
        d = 64 * n_blocks
        n_total = d**2 * (8 * 64 + 4) * n_blocks
        got = float(FINE_GRAINED.loss(p, {"n_total": jnp.asarray(n_total), "tokens": jnp.asarray(tokens),
                                           "granularity": jnp.asarray(float(g))}))
        assert got == pytest.approx(want, abs=0.03)


def test_chinchilla_gopher_and_chinchilla_points():
    p = {k: jnp.asarray(v) for k, v in PUBLISHED["chinchilla"]["hoffmann2022"].items()}
    for n, d, want in ((70e9, 1.4e12, 1.9366), (280e9, 300e9, 1.9933)):
        got = float(CHINCHILLA.loss(p, {"n_active": jnp.asarray(n), "tokens": jnp.asarray(d)}))
        assert got == pytest.approx(want, abs=1e-4)


def test_sparsity_law_shape_and_sign():
    """No published coefficients (LAWS.md §3.2): the illustrative truth has λ < 0 and the paper's
    shape (§3.5): at fixed N and compute, loss is parabolic in S and the optimal S grows with N."""
    from bayesmoe.testing import TRUTH

    p = {k: jnp.asarray(v) for k, v in TRUTH["sparsity"].items()}
    assert float(p["lambda"]) < 0  # c/(1−S)^λ falls as S → 1
    x = {"n_total": jnp.asarray(1e9), "tokens": jnp.asarray(2e10), "experts": jnp.asarray([1.0, 4.0, 16.0])}
    loss = np.asarray(SPARSITY.loss(p, x))
    # dense (S = 0) reduces to a/N^α + b/D^β + c + d/N^γ + e
    dense = (p["a"] / 1e9 ** p["alpha"] + p["b"] / 2e10 ** p["beta"] + p["c"] + p["d"] / 1e9 ** p["gamma"] + p["e"])
    assert loss[0] == pytest.approx(float(dense), rel=1e-12)
    # fixed compute C = 6·N_active·D with N_active = N/E: D = C·E/(6N)
    experts = jnp.geomspace(1.0, 1000.0, 400)
    s_opt = []
    for n in (1e8, 1e9, 1e10):
        xs = {"n_total": jnp.asarray(n), "tokens": 1e20 * experts / (6 * n), "experts": experts}
        ls = np.asarray(SPARSITY.loss(p, xs))
        assert 0 < int(np.argmin(ls)) < len(ls) - 1  # an interior optimum
        s_opt.append(1 - 1 / float(experts[int(np.argmin(ls))]))
    assert np.all(np.diff(s_opt) > 0)


def test_laws_vectorise_over_draws():
    p = {k: jnp.full((3, 5, 1), v) for k, v in J.items()}
    x = {"n_active": jnp.geomspace(1e8, 1e9, 7), "tokens": jnp.geomspace(1e9, 1e10, 7), "experts": jnp.ones(7)}
    assert JOINT.log_loss(p, x).shape == (3, 5, 7)
