"""``model.custom_objects``: its form is checked with the config, its file path is relative
to the config, and every way it can be wrong is one line naming the key and the file.
(Loading a real model with it, end to end: tests/slow/test_custom_layers.py.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import load_config
from engine.custom_objects import check_file, unknown_layer_error
from engine.errors import ConfigError, ModelError

BASE = """
[model]
path = "model.keras"
{extra}
[data.calibration]
kind = "npy_dir"
path = "cal"
[data.test]
kind = "npz"
path = "test.npz"
"""


def _cfg(write_config, spec: str):
    return load_config(write_config(BASE.format(extra=f"custom_objects = {spec!r}")))


def test_unset_by_default(write_config) -> None:
    assert load_config(write_config(BASE.format(extra=""))).model.custom_objects == ""


def test_a_file_is_taken_from_the_config_folder_a_module_name_as_given(
        write_config, tmp_path: Path) -> None:
    cfg = _cfg(write_config, "code/layers.py:CUSTOM_OBJECTS")
    assert cfg.model.custom_objects == f"{tmp_path / 'code' / 'layers.py'}:CUSTOM_OBJECTS"
    assert _cfg(write_config, "mypkg.layers:OBJS").model.custom_objects == "mypkg.layers:OBJS"
    absolute = f"{tmp_path / 'x.py'}:D"
    assert _cfg(write_config, absolute).model.custom_objects == absolute


def test_a_set_file_is_taken_from_where_it_is_typed(write_config, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(write_config(BASE.format(extra="")),
                      ['model.custom_objects="layers.py:CUSTOM"'])
    assert cfg.model.custom_objects == f"{elsewhere / 'layers.py'}:CUSTOM"


@pytest.mark.parametrize(("spec", "words"), [
    ("layers.py", "does not say where the dict is"),
    ("layers.py:", "does not say where the dict is"),
    (":CUSTOM", "does not say where the dict is"),
    ("layers.py:2fast", "'2fast' is not a Python name"),
    ("my-pkg.layers:CUSTOM", "neither a .py file nor a module name"),
])
def test_a_malformed_spec_is_one_line_naming_file_and_key(write_config, spec: str,
                                                          words: str) -> None:
    with pytest.raises(ConfigError) as info:
        _cfg(write_config, spec)
    text = str(info.value)
    assert "job.toml: model.custom_objects:" in text and words in text
    assert "layers.py:CUSTOM_OBJECTS" in text  # the form to write
    assert "\n" not in text


def test_a_missing_file_is_caught_before_any_work(write_config, tmp_path: Path) -> None:
    cfg = _cfg(write_config, "nowhere.py:CUSTOM")
    with pytest.raises(ModelError) as info:
        check_file(cfg.model.custom_objects)
    assert str(info.value).startswith(f"model.custom_objects: {tmp_path / 'nowhere.py'} not found")
    (tmp_path / "nowhere.py").write_text("CUSTOM = {}\n")
    check_file(cfg.model.custom_objects)  # there now: no error
    check_file("some.module:CUSTOM")  # a module is looked up where it is imported


def test_an_unregistered_class_says_how_to_register_it() -> None:
    k3 = "Could not locate class 'Blur'. Make sure custom classes are decorated with ..."
    err = unknown_layer_error("m.keras", k3)
    assert err is not None
    assert "'Blur'" in err.message and "model.custom_objects" in err.message
    assert "CUSTOM_OBJECTS = {'Blur': Blur}" in err.hint and "Make sure" not in str(err)
    # Set, but the dict does not name the class: says which dict in which file.
    err = unknown_layer_error("m.h5", "Unknown layer: 'Blur'. Please ensure ...", "/p/layers.py:CUSTOM")
    assert err is not None
    assert "does not name" in err.message and "CUSTOM in /p/layers.py" in err.message
    assert "add 'Blur': Blur to the dict CUSTOM in /p/layers.py" in err.hint
    assert unknown_layer_error("m.h5", "Input 0 of layer dense is incompatible") is None
    registered = unknown_layer_error("m.keras", "Could not locate class 'my_pkg>Blur'. ...")
    assert registered is not None and "{'my_pkg>Blur': Blur}" in registered.hint


# --- the loader the TensorFlow child runs (it imports no TensorFlow itself)


def _loader():
    from engine.backends.tf import custom_layers

    custom_layers._loaded.clear()  # noqa: SLF001 - each test imports its own files
    return custom_layers.load_custom_objects


def test_the_dict_is_imported_from_the_users_file(tmp_path: Path) -> None:
    (tmp_path / "helpers.py").write_text("class Blur:\n    pass\n")
    # The file imports its neighbour, as it does when the user runs it.
    (tmp_path / "layers.py").write_text("from helpers import Blur\nCUSTOM = {'Blur': Blur}\n")
    objects = _loader()(f"{tmp_path / 'layers.py'}:CUSTOM")
    assert objects is not None and list(objects) == ["Blur"]
    assert objects["Blur"].__name__ == "Blur"
    assert _loader()("") is None


@pytest.mark.parametrize(("code", "spec_tail", "words"), [
    ("CUSTOM = {}\n", ":OTHER", "defines no OTHER"),
    ("def CUSTOM():\n    pass\n", ":CUSTOM", "CUSTOM in {file} is a function, not a dict"),
    ("CUSTOM = {1: int}\n", ":CUSTOM", "has a key that is not a string"),
    ("raise RuntimeError('no GPU here')\n", ":CUSTOM",
     "running {file} failed: RuntimeError: no GPU here"),
])
def test_every_failure_names_the_key_and_the_file(tmp_path: Path, code: str, spec_tail: str,
                                                  words: str) -> None:
    f = tmp_path / "layers.py"
    f.write_text(code)
    with pytest.raises(ModelError) as info:
        _loader()(f"{f}{spec_tail}")
    text = str(info.value)
    assert text.startswith("model.custom_objects: ") and str(f) in text
    assert words.format(file=f) in text and "\n" not in text


def test_a_module_that_is_not_there_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"^model.custom_objects: no module named "
                       r"no_such_pkg_artq\.layers \(looked in the current directory"):
        _loader()("no_such_pkg_artq.layers:CUSTOM")
    with pytest.raises(ModelError, match="not found"):
        _loader()(f"{tmp_path / 'gone.py'}:CUSTOM")
