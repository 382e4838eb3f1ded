"""One check of parameter-set numbers, the same error from every entry point that takes them."""

from __future__ import annotations

import pytest


def test_every_entry_point_checks_parameter_sets_the_same_way(embedded_db, tmp_path):
    import lfpbold
    from lfpbold.schemas import params

    entry_points = {
        "select": lambda **kw: lfpbold.select(**kw),
        "results": lambda **kw: lfpbold.results(**kw),
        "export_maps": lambda **kw: lfpbold.export_maps(tmp_path / "maps", **kw),
        "export_results": lambda **kw: lfpbold.export_results(tmp_path / "results", **kw),
        "export_nwb": lambda **kw: lfpbold.export_nwb(tmp_path / "nwb", **kw),
    }
    for name, call in entry_points.items():
        unknown = "band_paramset" if name == "export_nwb" else "bold_paramset"  # NWB holds the LFP side only
        table = params.BandPowerParams if name == "export_nwb" else params.BoldParams
        with pytest.raises(ValueError) as err:
            call(**{unknown: 99})
        where = f"{unknown} in table {table.full_table_name}"
        assert str(err.value) == f"No {table.__name__} set 99 ({where}); the sets that exist: 0", name
        for bad in ("1", 1.0, True, None):
            with pytest.raises(TypeError, match="lfp_paramset must be a parameter-set number"):
                call(lfp_paramset=bad)
    assert not any((tmp_path / d).exists() for d in ("maps", "results", "nwb"))
    assert len(params.AnalysisSelection()) == 0
    # a new set is named among those that exist
    number = params.BoldParams.insert_new_params(params.BoldParams.bandpass_params(), "band-pass only")
    with pytest.raises(ValueError, match=f"the sets that exist: 0, {number}$"):
        lfpbold.select(bold_paramset=number + 1)
    assert params.check_paramsets({"bold_paramset": number}) == {"bold_paramset": number}
    with pytest.raises(ValueError, match="not a parameter-set key"):
        params.check_paramsets({"bold": 0})
