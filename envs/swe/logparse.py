"""SWE-bench's test-log formats: one parser per repository, and SWE-bench's id matching.

SWE-bench grades a row by running its eval script, cutting the log between the script's
``>>>>> Start Test Output`` and ``>>>>> End Test Output`` lines, and reading ``{test: status}``
with the parser its repository is mapped to (SWE-bench ``swebench/harness/log_parsers/python.py``,
``MAP_REPO_TO_PARSER_PY``; ``swebench/harness/grading.py``, ``get_logs_eval``). The formats,
learned from that code and written here independently:

``pytest``          a line starting with a status then the test (``PASSED a.py::t``) or a test then a
                    status (``a.py::t PASSED``, pytest ``-v``); the test is the first whitespace-
                    separated word, so a parametrised id with spaces is cut at its first space
                    (``FAILED`` lines drop ``" - "`` first); ``SKIPPED [2] file:line`` aggregates are
                    not tests
``pytest_options``  as pytest, with an absolute path inside ``[...]`` cut to its last component
``pytest_v2``       as pytest after ANSI colour codes and control characters are removed
``django``          ``test_x (mod.Class) ... ok|skipped|FAIL|ERROR``, ``FAIL: ``/``ERROR: `` headers,
                    a lone ``ok`` after interleaved output, and three known interleavings
``sympy``           ``test_x ok|F|E`` lines of ``bin/test`` and ``___ file.py:test_x ___`` failure headers
``seaborn``         pytest variants (``FAILED x``, ``x PASSED``, ``PASSED x``)
``matplotlib``      status-first lines after ``MouseButton.LEFT/RIGHT`` become ``1``/``3``

Matching (:func:`lookup`): an expected id is looked up as it is; a stored id with spaces (a
parametrised test) is also looked up by its first word, which is what the parser kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable

STATUSES = ("PASSED", "FAILED", "SKIPPED", "ERROR", "XFAIL")
START_TEST_OUTPUT = ">>>>> Start Test Output"
END_TEST_OUTPUT = ">>>>> End Test Output"
#: lines SWE-bench's scripts print when a step failed; any of them voids the run
BAD_CODES = (">>>>> Patch Apply Failed", ">>>>> Reset Failed", ">>>>> Tests Errored", ">>>>> Tests Timed Out")

_ALT = "|".join(STATUSES)
_STATUS_FIRST = re.compile(rf"^({_ALT})\s+(\S+)")
_TEST_FIRST = re.compile(rf"^(\S+)\s+({_ALT})(?:\s|$)")
_SKIP_AGGREGATE = re.compile(r"\[\d+\]")
_ANSI = re.compile(r"\[(\d+)m")
_CONTROL = str.maketrans("", "", "".join(chr(c) for c in range(1, 32)))


def _pytest_line(line: str) -> tuple[str, str] | None:
    m = _STATUS_FIRST.match(line)
    if m:
        status, test = m.groups()
        if status == "FAILED":
            test = line.replace(" - ", " ").split()[1]
        if status == "SKIPPED" and _SKIP_AGGREGATE.match(test):
            return None
        return test, status
    m = _TEST_FIRST.match(line)
    if m:
        return m.group(1), m.group(2)
    return None


def parse_pytest(log: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in log.split("\n"):
        hit = _pytest_line(line)
        if hit:
            out[hit[0]] = hit[1]
    return out


def _short_option(test: str) -> str:
    m = re.match(r"(.*?)\[(.*)\]", test)
    if not m:
        return test
    main, option = m.groups()
    if option.startswith("/") and not option.startswith("//") and "*" not in option:
        option = "/" + option.split("/")[-1]
    return f"{main}[{option}]"


def parse_pytest_options(log: str) -> dict[str, str]:
    return {_short_option(test): status for test, status in parse_pytest(log).items()}


def parse_pytest_v2(log: str) -> dict[str, str]:
    lines = (_ANSI.sub("", line).translate(_CONTROL) for line in log.split("\n"))
    return parse_pytest("\n".join(lines))


_DJANGO_INTERLEAVED = (
    re.compile(r"^(.*?)\s\.\.\.\sTesting against Django installed in ((?s:.*?)) silenced\)\.\nok$", re.M),
    re.compile(r"^(.*?)\s\.\.\.\sInternal Server Error: /(.*)/\nok$", re.M),
    re.compile(r"^(.*?)\s\.\.\.\sSystem check identified no issues \(0 silenced\)\nok$", re.M),
)


def parse_django(log: str) -> dict[str, str]:
    """Django's ``runtests.py --verbosity 2``: ``name (module.Class) ... ok`` lines and friends."""
    out: dict[str, str] = {}
    last: str | None = None
    for raw in log.split("\n"):
        line = raw.strip()
        if "--version is equivalent to version" in line:
            out["--version is equivalent to version"] = "PASSED"
        if " ... " in line:
            last = line.split(" ... ")[0]
        for ok in (" ... ok", " ... OK", " ...  OK"):
            if line.endswith(ok):
                # one row (django-7188) prints a migration line before the test name
                if line.startswith("Applying sites.0002_alter_domain_unique...test_no_migrations"):
                    line = line.split("...", 1)[-1].strip()
                out[line[: line.rindex(ok)]] = "PASSED"
                break
        if " ... skipped" in line:
            out[line.split(" ... skipped")[0]] = "SKIPPED"
        if line.endswith(" ... FAIL"):
            out[line.split(" ... FAIL")[0]] = "FAILED"
        if line.startswith("FAIL:") and len(line.split()) > 1:
            out[line.split()[1].strip()] = "FAILED"
        if line.endswith(" ... ERROR"):
            out[line.split(" ... ERROR")[0]] = "ERROR"
        if line.startswith("ERROR:") and len(line.split()) > 1:
            out[line.split()[1].strip()] = "ERROR"
        if line.startswith("ok") and last is not None:  # output came between "..." and "ok"
            out[last] = "PASSED"
    for pattern in _DJANGO_INTERLEAVED:
        for m in pattern.finditer(log):
            out[m.group(1)] = "PASSED"
    return out


def parse_sympy(log: str) -> dict[str, str]:
    """SymPy's ``bin/test``: ``test_x ok`` / ``test_x F`` / ``test_x E`` and ``___ f.py:test_x ___``."""
    out: dict[str, str] = {}
    for m in re.finditer(r"(_*) (.*)\.py:(.*) (_*)", log):
        out[f"{m.group(2)}.py:{m.group(3)}"] = "FAILED"
    for raw in log.split("\n"):
        line = raw.strip()
        if not line.startswith("test_"):
            continue
        name = line.split()[0]
        if line.endswith(" E"):
            out[name] = "ERROR"
        if line.endswith(" F"):
            out[name] = "FAILED"
        if line.endswith(" ok"):
            out[name] = "PASSED"
    return out


def parse_seaborn(log: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in log.split("\n"):
        words = line.split()
        if line.startswith("FAILED") and len(words) > 1:
            out[words[1]] = "FAILED"
        elif " PASSED " in line:
            if len(words) > 1 and words[1] == "PASSED":
                out[words[0]] = "PASSED"
        elif line.startswith("PASSED") and len(words) > 1:
            out[words[1]] = "PASSED"
    return out


def parse_matplotlib(log: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in log.split("\n"):
        line = line.replace("MouseButton.LEFT", "1").replace("MouseButton.RIGHT", "3")
        if not line.startswith(STATUSES):
            continue
        if line.startswith("FAILED"):
            line = line.replace(" - ", " ")
        words = line.split()
        if len(words) > 1:
            out[words[1]] = words[0]
    return out


PARSERS: dict[str, Callable[[str], dict[str, str]]] = {
    "pytest": parse_pytest,
    "pytest_options": parse_pytest_options,
    "pytest_v2": parse_pytest_v2,
    "django": parse_django,
    "sympy": parse_sympy,
    "seaborn": parse_seaborn,
    "matplotlib": parse_matplotlib,
}

#: SWE-bench's repository → parser table (Python repositories)
REPO_PARSER = {
    "astropy/astropy": "pytest_v2",
    "django/django": "django",
    "marshmallow-code/marshmallow": "pytest",
    "matplotlib/matplotlib": "matplotlib",
    "mwaskom/seaborn": "seaborn",
    "pallets/flask": "pytest",
    "psf/requests": "pytest_options",
    "pvlib/pvlib-python": "pytest",
    "pydata/xarray": "pytest",
    "pydicom/pydicom": "pytest_options",
    "pylint-dev/astroid": "pytest",
    "pylint-dev/pylint": "pytest_options",
    "pytest-dev/pytest": "pytest",
    "pyvista/pyvista": "pytest",
    "scikit-learn/scikit-learn": "pytest_v2",
    "sqlfluff/sqlfluff": "pytest",
    "sphinx-doc/sphinx": "pytest_v2",
    "sympy/sympy": "sympy",
}


def parser_name(repo: str, log_parser: str | None = None) -> str:
    """The parser of a row: its own ``log_parser`` field (a name, or SWE-bench's ``parse_log_X``),
    else its repository's entry in :data:`REPO_PARSER`, else ``pytest``."""
    if log_parser:
        name = log_parser.removeprefix("parse_log_")
        if name in PARSERS:
            return name
        by_repo = {r.split("/")[-1]: p for r, p in REPO_PARSER.items()}
        by_repo.update(scikit="pytest_v2", pvlib="pytest", sqlfluff="pytest")
        if name in by_repo:
            return by_repo[name]
        raise ValueError(f"unknown log_parser {log_parser!r}; known: {sorted(PARSERS)}")
    return REPO_PARSER.get(repo, "pytest")


def extract_test_output(log: str) -> str | None:
    """The part of an eval-script log between the start and end markers; None when a step failed
    (a bad code is printed) or a marker is missing (the script did not get to run the tests).

    From the first start marker (printed by the script before any repository code runs) to the
    last end marker (printed by the script after the test command returned).
    """
    if any(code in log for code in BAD_CODES):
        return None
    start, end = log.find(START_TEST_OUTPUT), log.rfind(END_TEST_OUTPUT)
    if start < 0 or end < start:
        return None
    return log[start + len(START_TEST_OUTPUT) : end]


def lookup(test_id: str, statuses: dict[str, str], by_word: dict[str, str] | None = None) -> str | None:
    """The status of ``test_id`` as SWE-bench would find it: exactly, else by first whitespace-
    separated word on both sides (a parametrised id with spaces, stored whole or SWE-bench's way
    cut at its first space, matches a log line that kept the other form). ``by_word`` is
    :func:`first_word_index` of ``statuses`` (computed when not given)."""
    if test_id in statuses:
        return statuses[test_id]
    words = test_id.split()
    if not words:
        return None
    index = by_word if by_word is not None else first_word_index(statuses)
    return index.get(words[0])


def first_word_index(statuses: dict[str, str]) -> dict[str, str]:
    """``{first word of id: status}``; when several ids share a first word, a failure wins."""
    index: dict[str, str] = {}
    for test, status in statuses.items():
        words = test.split()
        if not words:
            continue
        key = words[0]
        if key not in index or status in ("FAILED", "ERROR"):
            index[key] = status
    return index
