"""Registered places below the community: ids, the registry's lookups and label matching."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
from pydantic import ValidationError

from zhibao_cli.sample_city import yinchuan
from zhibao_cli.sample_places import PLACES_HEADER, sample_places
from zhibao_shared.events import (
    PublishedCaseData,
    PublishedScreeningData,
    ReportedCaseData,
    ReportedScreeningData,
)
from zhibao_shared.hierarchy import Level, load_registry
from zhibao_shared.places import (
    Place,
    PlaceKind,
    PlaceMatch,
    Places,
    PlacesError,
    UnknownPlace,
    chinese_number,
    community_of,
    load_places,
)

COMMUNITY = "640106001001"
OTHER = "640106001002"
FENGLINWAN = f"{COMMUNITY}-C001"
PARK = f"{COMMUNITY}-C002"
GRID_1 = f"{COMMUNITY}-G001"
GRID_2 = f"{COMMUNITY}-G002"


def _places() -> Places:
    """Two compounds and two grids in one community, one compound in another."""
    rows: list[dict[str, object]] = [
        {"id": GRID_1, "name": "第1网格", "worker": "网格员 王芳", "households": 420},
        {"id": GRID_2, "name": "第2网格", "aliases": ["湖畔网格"], "worker": "网格员 李强"},
        {"id": FENGLINWAN, "name": "枫林湾", "households": 540},
        {"id": PARK, "name": "湖畔花园小区", "aliases": ["湖畔花园南区"]},
        {"id": f"{OTHER}-C001", "name": "未来城"},
    ]
    rows += [
        {"id": f"{FENGLINWAN}-B{n:03d}", "name": f"{n}号楼", "grid": GRID_1 if n < 4 else GRID_2}
        for n in range(1, 13)
    ]
    rows += [{"id": f"{PARK}-B001", "name": "会所", "aliases": ["A座"], "grid": GRID_2}]
    rows += [{"id": f"{OTHER}-C001-B003", "name": "3号楼"}]
    return Places(Place.model_validate(row) for row in rows)


def test_an_id_says_its_kind_community_and_compound() -> None:
    building = Place.model_validate({"id": f"{FENGLINWAN}-B003", "name": "3号楼"})
    assert building.kind is PlaceKind.BUILDING
    assert building.community == COMMUNITY == community_of(building.id)
    assert building.compound == FENGLINWAN
    assert Place.model_validate({"id": GRID_1, "name": "第1网格"}).kind is PlaceKind.GRID
    assert Place.model_validate({"id": FENGLINWAN, "name": "枫林湾"}).kind is PlaceKind.COMPOUND


@pytest.mark.parametrize(
    ("row", "complaint"),
    [
        ({"id": "640106001001-X001", "name": "x"}, "pattern"),
        ({"id": FENGLINWAN, "name": "枫林湾", "kind": "grid"}, "not the id of a grid"),
        ({"id": FENGLINWAN, "name": "枫林湾", "community": OTHER}, "does not lie in"),
        ({"id": FENGLINWAN, "name": "枫林湾", "worker": "网格员 王芳"}, "only a grid"),
        ({"id": f"{FENGLINWAN}-B001", "name": "1", "grid": f"{OTHER}-G001"}, "another community"),
        ({"id": f"{FENGLINWAN}-B001", "name": "1", "compound": PARK}, "belongs to compound"),
    ],
)
def test_inconsistent_places_are_refused(row: dict[str, object], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        Place.model_validate(row)


def test_lookups() -> None:
    places = _places()
    assert places.get(FENGLINWAN) is not None
    assert places.get(f"{COMMUNITY}-C099") is None
    assert [p.id for p in places.compounds(COMMUNITY)] == [FENGLINWAN, PARK]
    assert [p.worker for p in places.grids(COMMUNITY)] == ["网格员 王芳", "网格员 李强"]
    assert len(places.buildings(FENGLINWAN)) == 12
    assert places.buildings(f"{COMMUNITY}-C099") == []
    grid = places.grid_of(f"{FENGLINWAN}-B005")
    assert grid is not None and grid.id == GRID_2
    assert places.grid_of(f"{OTHER}-C001-B003") is None
    assert places.communities() == {COMMUNITY, OTHER}


@pytest.mark.parametrize(
    "label", ["3号楼", "3栋", "3幢", "3号", "#3", "三号楼", "3", "３号楼", " 3 栋"]
)
def test_a_building_matches_by_its_number_in_any_usual_form(label: str) -> None:
    found = _places().match(COMMUNITY, compound="枫林湾", building=label)
    assert found == PlaceMatch(FENGLINWAN, f"{FENGLINWAN}-B003", GRID_1)


@pytest.mark.parametrize("label", ["枫林湾", "枫林湾小区", "枫林湾 小区", "枫林湾小区 "])
def test_a_compound_matches_with_or_without_its_suffix(label: str) -> None:
    assert _places().match(COMMUNITY, compound=label).compound == FENGLINWAN


def test_a_compound_matches_by_alias_and_names_are_compared_normalised() -> None:
    places = _places()
    assert places.match(COMMUNITY, compound="湖畔花园南区").compound == PARK
    assert places.match(COMMUNITY, compound="湖畔花园").compound == PARK
    assert places.match(COMMUNITY, compound="湖畔花园　小区").compound == PARK  # full-width space
    assert places.match(COMMUNITY, compound="湖畔花园", building="a座").building == f"{PARK}-B001"
    assert places.match(COMMUNITY, compound="湖畔花园", building="会所").grid == GRID_2


def test_labels_match_only_within_their_community() -> None:
    places = _places()
    assert places.match(OTHER, compound="枫林湾") == PlaceMatch()
    assert places.match(COMMUNITY, compound="未来城") == PlaceMatch()
    assert places.match(OTHER, building="3号楼").building == f"{OTHER}-C001-B003"


def test_a_building_without_a_compound_matches_only_in_a_community_of_one_compound() -> None:
    places = _places()
    assert places.match(COMMUNITY, building="3号楼") == PlaceMatch()
    assert places.match(OTHER, building="三号楼") == PlaceMatch(
        f"{OTHER}-C001", f"{OTHER}-C001-B003", None
    )


def test_unmatched_labels_leave_the_ids_unset() -> None:
    places = _places()
    assert places.match(COMMUNITY, compound="翠湖天地", building="3号楼") == PlaceMatch()
    assert places.match(COMMUNITY, compound="枫林湾", building="99号楼") == PlaceMatch(
        FENGLINWAN, None, None
    )
    assert places.match(COMMUNITY, compound="枫林湾", building="东门") == PlaceMatch(FENGLINWAN)
    assert places.match("640106009009", compound="枫林湾", grid="第1网格") == PlaceMatch()


@pytest.mark.parametrize("label", ["第1网格", "1网格", "网格1", "一网格", "1"])
def test_a_grid_matches_by_number_or_name(label: str) -> None:
    assert _places().match(COMMUNITY, grid=label).grid == GRID_1


def test_a_matched_building_brings_its_grid() -> None:
    places = _places()
    assert places.match(COMMUNITY, compound="枫林湾", building="5栋").grid == GRID_2
    assert places.match(COMMUNITY, grid="湖畔网格") == PlaceMatch(None, None, GRID_2)


def test_locate_resolves_an_id_and_completes_it_with_the_labels() -> None:
    places = _places()
    building = f"{FENGLINWAN}-B003"
    assert places.locate(COMMUNITY, place=building) == PlaceMatch(FENGLINWAN, building, GRID_1)
    assert places.locate(COMMUNITY, place=FENGLINWAN, building="3栋").building == building
    assert places.locate(COMMUNITY, place=FENGLINWAN, grid="第2网格") == PlaceMatch(
        FENGLINWAN, None, GRID_2
    )
    assert places.locate(COMMUNITY, place=GRID_2, compound="枫林湾") == PlaceMatch(
        FENGLINWAN, None, GRID_2
    )
    assert places.locate(COMMUNITY, compound="枫林湾") == PlaceMatch(FENGLINWAN)


def test_locate_refuses_unknown_and_other_community_ids() -> None:
    places = _places()
    with pytest.raises(UnknownPlace, match="is not registered"):
        places.locate(COMMUNITY, place=f"{COMMUNITY}-C099")
    with pytest.raises(UnknownPlace, match=f"lies in community {OTHER}"):
        places.locate(COMMUNITY, place=f"{OTHER}-C001")


@pytest.mark.parametrize(
    ("rows", "complaint"),
    [
        ([{"id": FENGLINWAN, "name": "a"}, {"id": FENGLINWAN, "name": "b"}], "listed twice"),
        ([{"id": f"{FENGLINWAN}-B001", "name": "1号楼"}], "compound .* is not listed"),
        (
            [
                {"id": FENGLINWAN, "name": "a"},
                {"id": f"{FENGLINWAN}-B001", "name": "1", "grid": GRID_1},
            ],
            "grid .* is not listed",
        ),
        ([{"id": FENGLINWAN, "name": "枫林湾"}, {"id": PARK, "name": "枫林湾小区"}], "label"),
        (
            [
                {"id": FENGLINWAN, "name": "a"},
                {"id": f"{FENGLINWAN}-B001", "name": "3号楼"},
                {"id": f"{FENGLINWAN}-B002", "name": "3栋"},
            ],
            "label '#3'",
        ),
    ],
)
def test_inconsistent_registries_are_refused(rows: list[dict[str, object]], complaint: str) -> None:
    with pytest.raises(PlacesError, match=complaint):
        Places(Place.model_validate(row) for row in rows)


def test_the_file_format_round_trips_and_reports_bad_lines(tmp_path: Path) -> None:
    places = _places()
    text = places.to_lines("a header")
    assert text.startswith("# a header\n")
    assert '"kind"' not in text and '"community"' not in text  # the ids say them
    again = Places.from_lines(text)
    assert list(again) == list(places)
    path = tmp_path / "places.jsonl"
    path.write_text(text + '{"id": "bad", "name": "x"}\n', encoding="utf-8")
    with pytest.raises(PlacesError, match=rf"{path} line {len(text.splitlines()) + 1}: id"):
        load_places(path)


def test_the_shipped_sample_has_the_seeds_pilot_compounds() -> None:
    places = load_places()
    places.verify(load_registry())
    pilots = {
        "640106001001-C001": "枫林湾",
        "640106001002-C001": "未来城",
        "640106001003-C001": "居安家园",
        "640106001004-C001": "新海家园二期",
    }
    for place_id, name in pilots.items():
        place = places.get(place_id)
        assert place is not None and place.name == name
        first = places.buildings(place_id)[0]
        assert (first.id, first.name) == (f"{place_id}-B001", "1号楼")
    assert places.match("640106001001", compound="枫林湾小区", building="3栋").building == (
        "640106001001-C001-B003"
    )


def test_the_shipped_file_is_the_generators_output() -> None:
    shipped = resources.files("zhibao_shared.data").joinpath("yinchuan-places.jsonl")
    text = shipped.read_text("utf-8")
    assert text == sample_places(yinchuan()).to_lines(PLACES_HEADER)
    # load_places() trusts the shipped file (builds places when asked): the same places
    assert list(load_places()) == list(Places.from_lines(text))


def test_every_community_of_the_sample_has_compounds_grids_and_buildings() -> None:
    registry, places = load_registry(), load_places()
    for community in registry.at_level(Level.COMMUNITY):
        compounds, grids = places.compounds(community.code), places.grids(community.code)
        assert compounds and grids, community.code
        assert sum(c.households or 0 for c in compounds) == community.households
        assert sum(g.households or 0 for g in grids) == community.households
        assert sum(g.population or 0 for g in grids) == community.population
        for compound in compounds:
            buildings = places.buildings(compound.id)
            assert buildings, compound.id
            assert sum(b.households or 0 for b in buildings) == compound.households
            assert all(b.grid in {g.id for g in grids} for b in buildings)
        assert all(g.worker and g.worker.startswith("网格员 ") for g in grids)


def test_jinfeng_has_the_seeds_compounds_and_grids() -> None:
    registry, places = load_registry(), load_places()
    jinfeng = [c.code for c in registry.communities_under("640106")]
    grids = [g for code in jinfeng for g in places.grids(code)]
    assert sum(len(places.compounds(code)) for code in jinfeng) == 449
    assert len(grids) == 400
    per_worker = sum(g.households or 0 for g in grids) / len(grids)
    assert 690 <= per_worker <= 700, "279,000 households for 400 grid workers"
    assert sum(1 for g in grids if (g.households or 0) > 500) > 300, "most above the standard"


def test_a_villages_compounds_are_its_groups_and_its_buildings_rows_of_houses() -> None:
    places = load_places()
    village = "640104201201"
    assert [c.name for c in places.compounds(village)][:2] == ["一组", "二组"]
    assert places.match(village, compound="1组", building="2").building == f"{village}-C001-B002"
    assert places.get(f"{village}-C001-B002") == places.buildings(f"{village}-C001")[1]
    assert places.buildings(f"{village}-C001")[1].name == "2排"


def test_elsewhere_a_grid_worker_serves_a_plausible_number_of_households() -> None:
    registry, places = load_registry(), load_places()
    for community in registry.at_level(Level.COMMUNITY):
        grids = places.grids(community.code)
        assert 250 <= (community.households or 0) / len(grids) <= 900, community.code


def test_places_outside_the_registry_are_refused() -> None:
    places = Places([Place.model_validate({"id": "999999999999-C001", "name": "x"})])
    with pytest.raises(PlacesError, match="999999999999, not in the registry"):
        places.verify(load_registry())


@pytest.mark.parametrize(
    ("text", "value"),
    [("3", 3), ("03", 3), ("三", 3), ("十", 10), ("十二", 12), ("二十三", 23), ("一百零五", 105)],
)
def test_chinese_numbers(text: str, value: int) -> None:
    assert chinese_number(text) == value


def test_chinese_number_refuses_what_is_no_number() -> None:
    assert chinese_number("三三") is None
    assert chinese_number("东") is None


def test_events_name_places_by_id_and_published_data_carry_the_registered_ids() -> None:
    screening = ReportedScreeningData.model_validate(
        {"temperature_c": 36.6, "site": "gate", "place": f"{FENGLINWAN}-B003"}
    )
    assert screening.place == f"{FENGLINWAN}-B003"
    case = ReportedCaseData.model_validate(
        {"person": {"ref": "r1"}, "classification": "suspected", "place": GRID_1}
    )
    assert case.place == GRID_1
    with pytest.raises(ValidationError, match="place"):
        ReportedScreeningData.model_validate({"temperature_c": 36.6, "site": "gate", "place": "3"})
    published = PublishedScreeningData.model_validate(
        {
            "temperature_c": 36.6,
            "site": "gate",
            "building": "3栋",
            "compound_id": FENGLINWAN,
            "building_id": f"{FENGLINWAN}-B003",
            "grid_id": GRID_1,
        }
    )
    assert (published.building, published.building_id) == ("3栋", f"{FENGLINWAN}-B003")
    assert (
        PublishedCaseData.model_validate(
            {"person": {"pid": "0" * 32}, "classification": "confirmed"}
        ).compound_id
        is None
    )
    with pytest.raises(ValidationError, match="building_id"):
        PublishedCaseData.model_validate(
            {"person": {"pid": "0" * 32}, "classification": "confirmed", "building_id": GRID_1}
        )
