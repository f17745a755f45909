"""Checks on a student's source text, for exercises whose lesson is *how*
the program waits (poll, epoll, non-blocking, threads). Read with `ast`,
never run.

A reading of the source can judge only what the source names. Code that
picks its modules or its code at run time (importlib, __import__, exec,
eval, getattr on a module with a computed name, the interpreter's dunder
attributes) hides what it uses from any reader, so `dynamic_code` reports
each such way and the exercises with source rules forbid them outright.
What a program does while it runs (its threads, its processes) is checked
on the running program (grader.testkit.suites.server_rules); this is the other half."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Finding:
    line: int
    what: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.what}"


# Threads and processes, for the exercises that allow neither; each suite
# merges it into its own list of what the lesson forbids.
THREADS_AND_PROCESSES = {
    "threading": "threads", "_thread": "threads", "concurrent": "threads",
    "multiprocessing": "processes", "os.fork": "processes", "os.forkpty": "processes",
    "pty": "processes", "subprocess": "processes", "os.system": "processes",
    "os.popen": "processes", "os.posix_spawn": "processes", "os.posix_spawnp": "processes",
    "socketserver": "socketserver serves with threads or processes",
}

# Modules and module attributes whose job is to import, load or run code
# chosen at run time, or to reach objects without naming them.
DYNAMIC_MODULES = {
    "importlib": "imports a module whose name is computed at run time",
    "imp": "imports a module whose name is computed at run time",
    "builtins": "reaches __import__, exec and eval by name",
    "__builtin__": "reaches __import__, exec and eval by name",
    "runpy": "runs another module as code",
    "pkgutil": "imports modules by name",
    "zipimport": "imports modules from an archive",
    "pydoc": "its locate() imports by name",
    "code": "runs text as code", "codeop": "compiles text into code",
    "timeit": "runs text as code", "cProfile": "runs text as code",
    "profile": "runs text as code", "pdb": "runs text as code", "bdb": "runs text as code",
    "doctest": "runs text as code", "trace": "runs text as code",
    "marshal": "loads compiled code",
    "pickle": "unpickling imports the modules the data names",
    "_pickle": "unpickling imports the modules the data names",
    "shelve": "unpickling imports the modules the data names",
    "ctypes": "calls into the interpreter or the C library directly",
    "_ctypes": "calls into the interpreter or the C library directly",
    "gc": "hands out any live object, modules included, without naming it",
    "site": "runs the import lines of .pth files",
    "unittest": "mock.patch imports by name",
    "logging.config": "a configuration can name classes to import",
    "sys.modules": "every loaded module, looked up by name",
    "sys.meta_path": "changes how imports work",
    "sys.path_hooks": "changes how imports work",
    "sys.path_importer_cache": "changes how imports work",
    "sys._getframe": "frames lead to the built-ins and to every module's globals",
    **{f"os.{name}": "runs another program in place of this one"
       for name in ("execl", "execle", "execlp", "execlpe", "execv", "execve", "execvp", "execvpe")},
}

# Built-in names that run text as code or hand out namespaces.
CODE_BUILTINS = {
    "exec": "runs text as code",
    "eval": "runs text as code",
    "compile": "turns text into code",
    "__import__": "imports a module whose name is computed at run time",
    "__builtins__": "reaches __import__, exec and eval by name",
    "__loader__": "the module's loader imports by name",
    "__spec__": "the module's loader imports by name",
    "globals": "hands out the module's namespace, __builtins__ included",
}
# Outside a function, locals() and vars() are globals() under another name.
NAMESPACE_CALLS = {"locals", "vars"}

# Attributes that lead from any object to modules, namespaces or code.
REACHING_ATTRIBUTES = {
    "__subclasses__", "__base__", "__bases__", "__mro__", "__globals__", "__builtins__",
    "__dict__", "__code__", "__closure__", "__self__", "__getattribute__", "__import__",
    "__loader__", "__spec__", "f_builtins", "f_globals", "f_locals", "f_back", "f_code",
    "tb_frame", "gi_frame", "gi_code", "cr_frame", "ag_frame",
}
NAME_LOOKUPS = {"getattr", "hasattr", "setattr", "delattr"}
OPERATOR_LOOKUPS = {"operator.attrgetter", "operator.methodcaller"}


class _Module:
    """What the whole file binds, for following names: which local names
    stand for which modules (`import select as s`: `s` is `select`), which
    modules were star-imported, which built-in names the file redefines at
    its top level (`def compile`, `from re import compile`), and which
    names only ever hold literal strings (`for name in ("SIGINT", "SIGTERM")`)."""

    def __init__(self, tree: ast.AST) -> None:
        self.parents = {child: node for node in ast.walk(tree)
                        for child in ast.iter_child_nodes(node)}
        self.aliases: dict[str, str] = {}   # name -> dotted name it stands for
        self.modules: set[str] = set()      # names bound to modules by `import`
        self.starred: list[str] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    name = alias.asname or alias.name.split(".")[0]
                    self.aliases[name] = alias.name if alias.asname else name
                    self.modules.add(name)
            elif isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    if alias.name == "*":
                        self.starred.append(node.module)
                    else:
                        self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        self.bound = self._other_bindings(tree)
        # `m = select` makes `m` one more name for the module (to a fixpoint).
        changed = True
        while changed:
            changed = False
            for node in ast.walk(tree):
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Name) \
                        and node.value.id in self.aliases:
                    for target in node.targets:
                        if isinstance(target, ast.Name) and target.id not in self.aliases:
                            self.aliases[target.id] = self.aliases[node.value.id]
                            if node.value.id in self.modules:
                                self.modules.add(target.id)
                            changed = True
        deleted = {t.id for node in ast.walk(tree) if isinstance(node, ast.Delete)
                   for t in node.targets if isinstance(t, ast.Name)}
        self.redefined: set[str] = set()
        for node in getattr(tree, "body", []):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.redefined.add(node.name)
            elif isinstance(node, ast.ImportFrom) and node.module \
                    and _listed(node.module, DYNAMIC_MODULES) is None:
                self.redefined.update(a.asname or a.name for a in node.names)
        self.redefined -= deleted
        self.literals = self._literal_names(tree)

    @staticmethod
    def _other_bindings(tree: ast.AST) -> set[str]:
        """Names also bound by something other than an import (a parameter,
        an assignment, a loop): such a name may not be the module."""
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
        return names

    @staticmethod
    def _literal_names(tree: ast.AST) -> dict[str, set[str]]:
        """Names whose every binding is a literal string, or a loop over a
        literal tuple/list/set of strings: the strings each may hold."""
        sources: dict[ast.AST, list] = {}   # a Name being bound -> what it may get
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    sources[target] = [node.value]
            elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
                it = node.iter
                sources[node.target] = list(it.elts) if isinstance(
                    it, (ast.Tuple, ast.List, ast.Set)) else [None]
        values: dict[str, set[str]] = {}
        unknown: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.arg):
                unknown.add(node.arg)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                strings = [_literal(v) for v in sources.get(node, [None])]
                if None in strings:
                    unknown.add(node.id)
                else:
                    values.setdefault(node.id, set()).update(strings)
        return {k: v for k, v in values.items() if k not in unknown}

    def dotted(self, node: ast.AST) -> str | None:
        """'select.epoll' for `select.epoll` or `s.epoll` (s an alias of
        select); None unless the expression is a chain of names that starts
        with an imported one."""
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name) or node.id not in self.aliases:
            return None  # not rooted in an import: a variable, not a module
        parts.append(self.aliases[node.id])
        return ".".join(reversed(parts))

    def is_module(self, node: ast.AST) -> bool:
        return isinstance(node, ast.Name) and node.id in self.modules

    def names(self, node: ast.AST) -> set[str] | None:
        """The strings an expression can be, where that is plain; else None."""
        if _literal(node) is not None:
            return {_literal(node)}
        if isinstance(node, ast.Name):
            return self.literals.get(node.id)
        return None

    def in_function(self, node: ast.AST) -> bool:
        while node in self.parents:
            node = self.parents[node]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                return True
        return False


def _listed(name: str, table) -> str | None:
    """The entry of `table` that `name` is or lies inside ('a.b' is inside 'a')."""
    for entry in table:
        if name == entry or name.startswith(entry + "."):
            return entry
    return None


def _literal(node) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _uses(tree: ast.AST, module: _Module | None = None) -> list[tuple[int, str]]:
    """Every module imported and every dotted name used, as 'mod' / 'mod.attr',
    with aliases followed (`import select as s; s.epoll` is 'select.epoll'),
    and `getattr(mod, "attr")` read as `mod.attr`."""
    module = module or _Module(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append((node.lineno, alias.name))
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.lineno, node.module))
            for alias in node.names:
                found.append((node.lineno, f"{node.module}.{alias.name}"))
        elif isinstance(node, ast.Attribute):
            parent = module.parents.get(node)
            if isinstance(parent, ast.Attribute) and parent.value is node:
                continue  # the longest chain speaks for it: os.path.join, not os.path
            name = module.dotted(node)
            if name:
                found.append((node.lineno, name))
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and module.starred:
            # After `from select import *`, a bare `epoll` is select.epoll.
            found.extend((node.lineno, f"{star}.{node.id}") for star in module.starred)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "__import__" and node.args and _literal(node.args[0]):
                found.append((node.lineno, _literal(node.args[0])))
            elif node.func.id in NAME_LOOKUPS and len(node.args) >= 2 \
                    and module.is_module(node.args[0]):
                for attr in sorted(module.names(node.args[1]) or ()):
                    found.append((node.lineno, f"{module.dotted(node.args[0])}.{attr}"))
    return found


def forbidden_uses(source: str, forbidden: dict[str, str]) -> list[Finding]:
    """Uses of any name in `forbidden` (a module, or 'module.attr'; a module
    also forbids its submodules). The dict's values say why, for the message."""
    tree = ast.parse(source)
    findings, seen = [], set()
    for line, used in _uses(tree):
        entry = _listed(used, forbidden)
        if entry is not None and (line, used) not in seen:
            seen.add((line, used))
            findings.append(Finding(line, f"uses {used} ({forbidden[entry]})"))
    return findings


def dynamic_code(source: str) -> list[Finding]:
    """Every place where the file imports a module or runs code in a way a
    reading of the source cannot follow: importlib and its kin, __import__,
    exec, eval, compile, the built-ins reached as a namespace, dunder
    attributes that lead from any object to modules or code, a module
    handed around as a value, and getattr on a module with a name computed
    at run time. Plain imports, method calls, attributes and getattr with
    a literal name are never reported, so a correct program in an ordinary
    style has no finding. Raises SyntaxError if the source does not parse."""
    tree = ast.parse(source)
    module = _Module(tree)
    findings: dict[tuple[int, str], Finding] = {}

    def report(node: ast.AST, what: str) -> None:
        line = getattr(node, "lineno", 0)
        findings.setdefault((line, what), Finding(line, what))

    for line, used in _uses(tree, module):
        entry = _listed(used, DYNAMIC_MODULES)
        if entry is not None:
            findings.setdefault((line, used), Finding(line, f"uses {used} ({DYNAMIC_MODULES[entry]})"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if node.id in CODE_BUILTINS and node.id not in module.redefined:
                report(node, f"uses {node.id} ({CODE_BUILTINS[node.id]})")
            elif module.is_module(node) and node.id not in module.bound \
                    and isinstance(node.ctx, ast.Load) and _loose(node, module):
                report(node, f"hands the module {module.aliases[node.id]} around as a value "
                             "(use its functions by name: module.function)")
        elif isinstance(node, ast.Attribute) and node.attr in REACHING_ATTRIBUTES:
            report(node, f"looks up .{node.attr} (it leads to modules or code without naming them)")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and node.value.startswith("__") \
                and node.value in REACHING_ATTRIBUTES | set(CODE_BUILTINS):
            report(node, f"names {node.value!r} in a string (a way to reach modules or code)")
        elif isinstance(node, ast.Call):
            _check_call(node, module, report)
    return sorted(findings.values(), key=lambda f: (f.line, f.what))


def _loose(node: ast.Name, module: _Module) -> bool:
    """A module's name used other than as `module.attr`, `other = module`
    or getattr(module, ...): stored in a list, passed to a function..."""
    parent = module.parents.get(node)
    if isinstance(parent, ast.Attribute) and parent.value is node:
        return False
    if isinstance(parent, ast.Assign) and parent.value is node \
            and all(isinstance(t, ast.Name) for t in parent.targets):
        return False
    if isinstance(parent, ast.Call) and isinstance(parent.func, ast.Name) \
            and parent.func.id in NAME_LOOKUPS and parent.args and parent.args[0] is node:
        return False
    return True


def _check_call(node: ast.Call, module: _Module, report) -> None:
    """getattr on a module (or on what a call returned) with a computed name;
    vars() of a module; locals() and vars() outside a function; attrgetter
    and methodcaller with a computed name."""
    func = module.dotted(node.func) if isinstance(node.func, (ast.Name, ast.Attribute)) else None
    if isinstance(node.func, ast.Name) and node.func.id in NAME_LOOKUPS and len(node.args) >= 2:
        target, name = node.args[0], node.args[1]
        known = module.names(name)
        if known is None and (module.is_module(target) or isinstance(target, ast.Call)):
            what = f"the module {module.aliases[target.id]}" if module.is_module(target) \
                else "what a call returned"
            report(node, f"calls {node.func.id}() on {what} with a name computed at run time")
        for attr in known or ():
            if attr in REACHING_ATTRIBUTES or attr in CODE_BUILTINS:
                report(node, f"looks up {attr!r} with {node.func.id}() "
                             "(it leads to modules or code without naming them)")
    elif isinstance(node.func, ast.Name) and node.func.id in NAMESPACE_CALLS \
            and node.func.id not in module.redefined:
        if node.args and module.is_module(node.args[0]):
            report(node, "calls vars() on a module (its namespace, to look names up in)")
        elif not node.args and not module.in_function(node):
            report(node, f"calls {node.func.id}() outside a function "
                         "(the module's namespace, __builtins__ included)")
    elif func in OPERATOR_LOOKUPS and any(module.names(a) is None for a in node.args):
        report(node, f"calls {func}() with a name computed at run time")


def uses_any(source: str, names: set[str]) -> bool:
    return any(used in names for _, used in _uses(ast.parse(source)))


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")
