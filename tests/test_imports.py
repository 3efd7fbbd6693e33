"""The library's modules import one another without a cycle, lazy imports inside functions included:
a cycle hidden in a function is still a loop between two concepts that should be one way round."""
import ast
from pathlib import Path

SCN = Path(__file__).resolve().parent.parent / "scn"


def module_name(path: Path) -> str:
    parts = path.relative_to(SCN.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, known: set) -> set:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found |= {name for name in names if name in known}
    return found


def import_graph() -> dict:
    paths = {module_name(path): path for path in SCN.rglob("*.py")}
    known = set(paths)
    graph = {}
    for name, path in paths.items():
        targets = imports_of(path, known)
        # Importing a.b.c runs the package a.b's __init__ first, whatever that imports in turn; a
        # module of the package itself is already inside it.
        targets |= {parent for t in targets for parent in parents(t) if parent in known}
        graph[name] = {t for t in targets if t != name and not name.startswith(t + ".")}
    return graph


def parents(module: str) -> list:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(2, len(parts))]


def find_cycle(graph: dict) -> list | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_library_has_no_import_cycle():
    graph = import_graph()
    assert "scn.model" in graph and "scn.store.reader" in graph
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_a_cycle_is_found():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_library_never_imports_streamlit():
    for path in SCN.rglob("*.py"):
        assert "streamlit" not in imports_of(path, {"streamlit"}), path
