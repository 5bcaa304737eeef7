"""The error hierarchy: every error class of the project joins the tree drawn in `configs.errors`."""

from __future__ import annotations

import builtins
import importlib
import inspect
import pkgutil
import warnings

import pytest

import configs.errors
from actors.runtime.consume import Abandon, Drop, Retry
from configs.errors import BadReplyError, BusError, CaActorsError, NoResponderError, RequestTimeoutError

PACKAGES = ("bus", "configs", "actors", "store")
# Not errors: how a handler settles its message (see the docstring of configs.errors).
CONTROL_FLOW = {Retry, Drop, Abandon}


def _error_classes() -> list[type[BaseException]]:
    found: list[type[BaseException]] = []
    for package in PACKAGES:
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
            if info.name.endswith("__main__"):
                continue
            module = importlib.import_module(info.name)
            found += [
                obj
                for _, obj in inspect.getmembers(module, inspect.isclass)
                if issubclass(obj, BaseException)
                and obj.__module__ == module.__name__
                and not obj.__name__.startswith("_")  # a private sentinel never leaves its module
            ]
    return sorted(set(found), key=lambda cls: cls.__qualname__)


with warnings.catch_warnings():
    # As in test_engine_langgraph: importing the LangGraph engine makes langchain-core announce a future
    # default, and langchain_core puts its own "default" filters in front of ours when it is imported.
    import langchain_core  # noqa: F401

    warnings.filterwarnings(
        "ignore", message="The default value of `allowed_objects`", category=PendingDeprecationWarning
    )
    ERROR_CLASSES = _error_classes()


def _drawn() -> dict[str, tuple[str, str | None]]:
    """The tree in configs/errors.py's docstring: class name -> (drawn parent, the builtin it is "also")."""
    lines = (configs.errors.__doc__ or "").splitlines()
    drawn: dict[str, tuple[str, str | None]] = {}
    parents = ["CaActorsError"]
    for line in lines:
        if "── " not in line:
            continue
        depth = line.index("── ") // 4
        text = line.split("── ", 1)[1]
        name = text.split()[0]
        also = text.split("(also ", 1)[1].split(")")[0] if "(also " in text else None
        del parents[depth:]
        drawn[name] = (parents[-1], also)
        parents.append(name)
    return drawn


def test_every_error_class_of_the_project_is_drawn_in_the_tree_where_it_derives() -> None:
    classes = {cls.__name__: cls for cls in ERROR_CLASSES}
    assert len(classes) > 20
    drawn = _drawn()
    for name, cls in classes.items():
        if cls in CONTROL_FLOW:
            assert not issubclass(cls, CaActorsError)
            continue
        assert issubclass(cls, CaActorsError), f"{cls.__module__}.{cls.__qualname__} is outside the tree"
        if cls is CaActorsError:
            continue
        assert name in drawn, f"{name} is not drawn in configs/errors.py"
        parent, also = drawn[name]
        assert parent in {base.__name__ for base in cls.__bases__}, f"{name} is drawn under {parent}"
        if also is not None:
            assert issubclass(cls, getattr(builtins, also)), f"{name} is drawn as also a {also}"


def test_the_drawn_tree_names_no_class_that_does_not_exist() -> None:
    names = {cls.__name__ for cls in ERROR_CLASSES}
    assert set(_drawn()) == names - {c.__name__ for c in CONTROL_FLOW} - {"CaActorsError"}


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (NoResponderError("ca.llm.complete"), "no responder (subject ca.llm.complete)"),
        (RequestTimeoutError("ca.memory.read", 2.5), "no answer within 2.5s (subject ca.memory.read)"),
        (BadReplyError("ca.trigger.x", "RunAnswer", "not JSON"), "not a valid RunAnswer: not JSON"),
    ],
)
def test_request_errors_are_bus_errors_naming_their_subject(error: BusError, text: str) -> None:
    assert isinstance(error, BusError)
    assert text in str(error)
    assert error.subject is not None
    assert error.subject in str(error)


def test_a_request_timeout_is_also_a_builtin_timeout() -> None:
    assert isinstance(RequestTimeoutError("s", 1.0), TimeoutError)
