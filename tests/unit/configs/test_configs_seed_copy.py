"""The seed configs shipped in the repo (configs/seeds/) are our users' files, unchanged."""

from __future__ import annotations

from tests.conftest import ROOT, SEEDS


def test_the_seed_configs_in_the_repo_are_our_users_files_unchanged() -> None:
    names = sorted(p.name for p in SEEDS.iterdir())
    assert "README.md" in names
    assert len([n for n in names if n.endswith(".yaml")]) >= 6
    shared = ROOT.parent / "shared" / "seed-configs"
    if shared.is_dir():  # beside a workplace checkout: the copy must not drift from the originals
        for original in shared.iterdir():
            assert (SEEDS / original.name).read_bytes() == original.read_bytes(), original.name
