import json

import numpy as np
import pytest

import bayesmoe
from bayesmoe import Law, Prior, PriorError, Term
from bayesmoe.priors import default_priors, resolve_priors, sites, spec_from_json, spec_to_json


@pytest.mark.parametrize("law", ["joint", "fine_grained", "sparsity", "chinchilla"])
@pytest.mark.parametrize("family", ["literature", "weak"])
def test_every_site_has_a_default_and_json_round_trips(law, family):
    spec = default_priors(law, family)
    assert set(sites(law, hierarchical=True)) <= set(spec)
    back = spec_from_json(spec_to_json(spec))
    assert back == spec
    json.loads(spec_to_json(spec))  # plain JSON


def test_literature_priors_centre_on_published_joint_fit():
    spec = default_priors("joint")
    assert spec["alpha"].args["loc"] == -0.1889 and spec["omega"].args["loc"] == 0.5529
    assert np.exp(spec["e_start"].args["loc"]) == pytest.approx(2.0732)


def test_overrides_numbers_dicts_and_family():
    spec = resolve_priors("joint", {"family": "weak", "e_max": 290.4521,
                                    "alpha": {"dist": "normal", "loc": -0.2, "scale": 0.05}})
    assert spec["e_max"].is_fixed and spec["e_max"].args["value"] == 290.4521
    assert spec["alpha"] == Prior.normal(-0.2, 0.05)
    assert spec["beta"] == default_priors("joint", "weak")["beta"]


@pytest.mark.parametrize(
    ("priors", "fragment"),
    [
        ({"alhpa": 1.0}, "unknown prior sites"),
        ({"c": 1.3}, "'c' is set through 'c_rel'"),
        ({"alpha": {"loc": 0.1, "scale": 0.1}}, "needs a 'dist' key"),
        ({"alpha": {"dist": "normal", "loc": 0.1}}, "takes ['loc', 'scale']"),
        ({"alpha": {"dist": "normal", "loc": 0.1, "scale": -1.0}}, "scale must be > 0"),
        ({"alpha": {"dist": "cauchy", "loc": 0.1, "scale": 1.0}}, "unknown prior distribution"),
        ("flat", "unknown prior family"),
    ],
)
def test_bad_prior_specs_are_explained(priors, fragment):
    with pytest.raises(PriorError) as info:
        resolve_priors("joint", priors)
    assert fragment in str(info.value)


def test_user_law_registers_fits_saves_and_loads(tmp_path):
    import jax.numpy as jnp

    law = Law(
        name="test_kaplan_like",
        inputs=("n_active", "tokens"),
        terms=(Term("a", lambda p, x: -p["alpha"] * jnp.log(x["n_active"])),
               Term("b", lambda p, x: -p["beta"] * jnp.log(x["tokens"]))),
        irreducible="e",
        shape_params=("alpha", "beta"),
        pooled=("alpha", "beta", "e"),
    )
    with pytest.raises(PriorError, match="miss sites"):
        bayesmoe.register_law(law, priors={"literature": {"alpha": Prior.normal(0.3, 0.1)}})
    bayesmoe.register_law(law, priors={"literature": {
        "alpha": Prior.normal(0.3, 0.1), "beta": Prior.normal(0.3, 0.1),
        "a_level": Prior.normal(-1.5, 1.0), "b_level": Prior.normal(-1.5, 1.0), "e_rel": Prior.normal(-0.5, 0.5),
    }})
    with pytest.raises(ValueError, match="built-in"):
        bayesmoe.register_law(Law("joint", (), (), "c", (), ()), priors={"literature": {}})
    from bayesmoe.testing import design_grid, synthetic_runs

    truth = {"a": 400.0, "b": 400.0, "e": 1.8, "alpha": 0.34, "beta": 0.28}
    runs = synthetic_runs(law, truth, design=design_grid("chinchilla", n_runs=80, seed=0), seed=0)
    result = bayesmoe.fit(runs, law="test_kaplan_like", num_chains=4, num_warmup=500, num_samples=500, progress=False)
    back = bayesmoe.load(result.save(tmp_path / "user.nc"))
    assert back.law is law
    lo, hi = result.posterior["alpha"].quantile([0.025, 0.975]).values
    assert lo < 0.34 < hi


def test_weak_priors_for_a_law_registered_without_them_is_an_error():
    # the review: priors="weak" used to fall back to "literature" silently for a user law
    import jax.numpy as jnp

    from bayesmoe import Law, Prior, PriorError, Term, register_law

    law = Law(name="only_literature", inputs=("n_active", "tokens"),
              terms=(Term("a", lambda p, x: -p["alpha"] * jnp.log(x["n_active"])),
                     Term("b", lambda p, x: -p["beta"] * jnp.log(x["tokens"]))),
              irreducible="e", shape_params=("alpha", "beta"), pooled=("alpha", "beta", "e"))
    register_law(law, priors={"literature": {"alpha": Prior.normal(0.3, 0.1), "beta": Prior.normal(0.3, 0.1),
                                             "a_level": Prior.normal(-1.5, 1.0), "b_level": Prior.normal(-1.5, 1.0),
                                             "e_rel": Prior.normal(-0.5, 0.5)}}, overwrite=True)
    assert resolve_priors(law, "literature")["alpha"] == Prior.normal(0.3, 0.1)
    with pytest.raises(PriorError, match="registered with prior families \\['literature'\\], not 'weak'"):
        resolve_priors(law, "weak")
