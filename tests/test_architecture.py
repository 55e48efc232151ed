"""The package's shape: no import cycles (lazy imports included), no module assigning another's
private fields, and a Network class that keeps to its public API."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "src" / "nbbp"
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py"))


def parsed(name):
    return ast.parse((PACKAGE / f"{name}.py").read_text(encoding="utf-8"))


def imported_modules(name):
    """The nbbp modules that module ``name`` imports anywhere in its text (at the top, inside
    functions, under TYPE_CHECKING): ``__init__`` stands for the package itself."""
    found = set()
    for node in ast.walk(parsed(name)):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 or (node.level == 0 and node.module
                                   and node.module.split(".")[0] == "nbbp"):
                module = node.module if node.level == 1 else node.module.partition(".")[2]
                if module:
                    found.add(module.split(".")[0])
                else:  # from . import x: the module x, or a name of the package
                    for alias in node.names:
                        found.add(alias.name if alias.name in MODULES else "__init__")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "nbbp":
                    found.add(parts[1] if len(parts) > 1 else "__init__")
    # The package's lazily loaded estimators (nbbp.__getattr__) import their modules too.
    if name == "__init__":
        for node in ast.walk(parsed(name)):
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_LAZY"
                                                    for t in node.targets):
                found.update(ast.literal_eval(node.value).values())
    return found - {name}


def test_the_import_graph_is_read_from_every_module():
    graph = {name: imported_modules(name) for name in MODULES}
    assert graph["network"] >= {"_layout", "passes", "persistence", "_fit", "_validation"}
    assert "sklearn" in graph["__init__"]  # the lazy import is seen
    assert "_version" in graph["host"]  # an import inside a function is seen
    assert all(target in MODULES for targets in graph.values() for target in targets)


def test_no_module_imports_itself_through_others():
    graph = {name: imported_modules(name) for name in MODULES}
    state = dict.fromkeys(MODULES, "new")

    def visit(name, path):
        state[name] = "open"
        for target in sorted(graph[name]):
            if state[target] == "open":
                cycle = [*path[path.index(target):], target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if state[target] == "new":
                visit(target, [*path, target])
        state[name] = "done"

    for name in MODULES:
        if state[name] == "new":
            visit(name, [name])


def test_no_module_assigns_another_objects_private_fields():
    # ``x._name = ...`` or ``x._name[...] = ...`` with x other than self or cls (and Numba's
    # dispatcher, whose cache _jit wraps with its compile locks: Numba has no public hook)
    offences = []
    for name in MODULES:
        for node in ast.walk(parsed(name)):
            targets = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                targets = [node.target]
            for target in targets:
                for sub in ast.walk(target):
                    if (isinstance(sub, ast.Attribute) and sub.attr.startswith("_")
                            and not sub.attr.startswith("__")
                            and isinstance(sub.value, ast.Name)
                            and sub.value.id not in ("self", "cls")
                            and (name, sub.value.id) != ("_jit", "dispatcher")):
                        offences.append(f"{name}.py:{sub.lineno}: {sub.value.id}.{sub.attr}")
    assert not offences, offences


def test_network_class_is_at_most_500_lines():
    tree = parsed("network")
    network = next(node for node in tree.body
                   if isinstance(node, ast.ClassDef) and node.name == "Network")
    first = min([network.lineno] + [d.lineno for d in network.decorator_list])
    assert network.end_lineno - first + 1 <= 500


def test_one_name_for_each_decorator():
    # the serial compiled function is ``part``, never ``jit()`` by another name
    for name in MODULES:
        if name == "_jit":
            continue
        for node in ast.walk(parsed(name)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "jit":
                pytest.fail(f"{name}.py:{node.lineno}: jit(...) outside _jit; use kernel, "
                            "helper or part")


def test_the_documented_layout_table_names_every_module():
    page = (PACKAGE.parents[1] / "docs" / "layout.md").read_text(encoding="utf-8")
    table = page[page.index("| path | what |"):]
    missing = [name for name in MODULES if not name.startswith("__")
               and f"`src/nbbp/{name}.py`" not in table and f"`{name}.py`" not in table]
    assert not missing, missing
