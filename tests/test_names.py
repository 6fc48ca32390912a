"""One name per thing: a module_utils file never shares its name with a module, so a
traceback's ``nslab_X`` says which layer it is in."""

import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_module_utils_and_library_share_no_name():
    utils = set(p.stem for p in (ROOT / "module_utils").glob("nslab_*.py"))
    modules = set(p.stem for p in (ROOT / "library").glob("nslab_*.py"))
    assert sorted(utils & modules) == []
