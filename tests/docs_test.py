"""docs/operations.md must not drift from the code.

Checks, each failing with the exact key / metric / message that is missing and where to add it:

1. every key of config/jobarchive.toml (top level and [store], [batch], [footprint], ...) has a
   row in the table under "### Config keys" of docs/operations.md, with its default; and every
   key in that table exists in the TOML;
2. every metric name in agent/src/http.rs appears in the "## Monitoring" section;
3. every `tracing::warn!` / `tracing::error!` message in agent/src/**/*.rs appears in the
   "## Troubleshooting" section;
4. every literal message of `CliError::usage/store/not_found(...)` and
   `StoreError::fatal/transient/config(...)` appears in "## Troubleshooting" (placeholders such as
   `{e}` may be written as anything, e.g. ERROR, on the same line);
5. every `jobarchive` command in README.md's shell blocks parses: run with `--help` appended,
   the built binary (target/debug/jobarchive; skipped when it is not built) accepts its
   subcommand, flags and values.

And one check on the whole repository (`RepositoryStandsAlone`): no tracked file refers to the
folder that sat beside the checkout during development (its name is assembled in
OUTSIDE_REFERENCES, so this file does not match itself). A clone has nothing beside it: tests,
tools and docs name only paths inside the repository.

Standard library only (Python 3.11+ for tomllib). Run from anywhere:
    python3 -m unittest tests/docs_test.py
"""

import json
import re
import shlex
import subprocess
import tomllib
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "operations.md"
DOC_NAME = "docs/operations.md"
CONFIG = ROOT / "config" / "jobarchive.toml"
SRC = ROOT / "agent" / "src"
HTTP = SRC / "http.rs"

CONFIG_HEADING = "### Config keys"
MONITORING_HEADING = "## Monitoring"
TROUBLESHOOTING_HEADING = "## Troubleshooting"


# ---------------------------------------------------------------- markdown


def doc_text():
    return DOC.read_text(encoding="utf-8")


def section(text, heading):
    """The lines from `heading` (exact line) up to the next heading of the same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = text.splitlines()
    try:
        start = next(i for i, l in enumerate(lines) if l.strip() == heading)
    except StopIteration:
        raise AssertionError(f"{DOC_NAME} has no heading {heading!r}") from None
    out = []
    for line in lines[start + 1 :]:
        m = re.match(r"^(#+)\s", line)
        if m and len(m.group(1)) <= level:
            break
        out.append(line)
    return "\n".join(out)


def table_rows(text):
    """Rows of the first markdown table in `text`, as lists of cell strings (header included)."""
    rows, in_table = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("|"):
            in_table = True
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if all(re.fullmatch(r":?-{3,}:?", c) for c in cells):
                continue
            rows.append(cells)
        elif in_table:
            break
    return rows


def config_table():
    """{key: row cells} of the table under "### Config keys"; first cell is `key`."""
    rows = table_rows(section(doc_text(), CONFIG_HEADING))
    if not rows:
        raise AssertionError(f"{DOC_NAME}: no table under {CONFIG_HEADING!r}")
    out = {}
    for cells in rows[1:]:
        m = re.fullmatch(r"`([^`]+)`", cells[0])
        if m:
            out[m.group(1)] = cells
    return out


# ---------------------------------------------------------------- TOML


def flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def toml_repr(v):
    """The value as TOML writes it (what the doc's default column must contain)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_repr(x) for x in v) + "]"
    return str(v)


# ---------------------------------------------------------------- Rust sources


def rust_files():
    return sorted(SRC.rglob("*.rs"))


def without_tests(text):
    """Drop a trailing `#[cfg(test)] mod tests { ... }`: messages there never reach users."""
    m = re.search(r"^#\[cfg\(test\)\]\s*\n\s*mod \w+\s*\{", text, re.M)
    return text[: m.start()] if m else text


STRING_RE = re.compile(r'r(#*)"(.*?)"\1|"((?:[^"\\]|\\.)*)"', re.S)


def unescape(body):
    """A normal Rust string literal's content, escapes resolved (continuation lines included)."""
    body = re.sub(r"\\\n\s*", "", body)
    simple = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}
    return re.sub(r"\\(u\{[0-9a-fA-F]+\}|.)", lambda m: simple.get(m.group(1), m.group(1))
                  if not m.group(1).startswith("u{") else chr(int(m.group(1)[2:-1], 16)), body)


def blank_comments(text):
    """`text` with // and /* */ comments replaced by spaces (newlines kept, strings untouched)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == '"' or (c == "r" and re.match(r'r#*"', text[i:i + 260]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_"))):
            m = STRING_RE.match(text, i)
            if m:
                out.append(m.group(0))
                i = m.end()
                continue
        if c == "'":
            m = re.match(r"'(\\.[^']*|[^\\'])'", text[i:i + 16])
            if m:
                out.append(m.group(0))
                i += m.end()
                continue
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
            continue
        out.append(c)
        i += 1
    return "".join(out)


def call_args(text, open_paren):
    """Split the arguments of the call whose '(' is at `open_paren` at top-level commas.

    `text` must have its comments blanked (blank_comments); skips strings and char literals.
    Returns (args, end index)."""
    i, depth, start, args = open_paren + 1, 1, open_paren + 1, []
    n = len(text)
    while i < n:
        c = text[i]
        if c == '"' or (c == "r" and re.match(r'r#*"', text[i:i + 260]) and not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = STRING_RE.match(text, i)
            if m:
                i = m.end()
                continue
        if c == "'":
            m = re.match(r"'(\\.[^']*|[^\\'])'", text[i:i + 16])
            if m:
                i += m.end()
                continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                args.append(text[start:i])
                return [a.strip() for a in args if a.strip()], i + 1
        elif c == "," and depth == 1:
            args.append(text[start:i])
            start = i + 1
        i += 1
    raise ValueError("unbalanced call")


def leading_literal(arg):
    """The string literal `arg` starts with, directly or as `format!(...)`'s first argument."""
    m = re.match(r"(?:format!\s*\(\s*)?(?:" + STRING_RE.pattern + ")", arg, re.S)
    if not m:
        return None
    if m.group(2) is not None:  # raw string
        return m.group(2)
    return unescape(m.group(3))


def line_of(text, index):
    return text.count("\n", 0, index) + 1


LOG_MACRO_RE = re.compile(r"(?<![\w:])(?:tracing::)?(warn|error)!\s*\(")


def log_messages():
    """[(level, message, 'file:line')] of every warn!/error! call in agent/src."""
    out = []
    for path in rust_files():
        text = blank_comments(without_tests(path.read_text(encoding="utf-8")))
        for m in LOG_MACRO_RE.finditer(text):
            args, _ = call_args(text, m.end() - 1)
            # The message is the first top-level argument that is a string literal; fields
            # (`error = %e`, `stream = %format!("..")`) and `target: ".."` come as `name = ..`.
            msg = next((leading_literal(a) for a in args if leading_literal(a) is not None), None)
            where = f"{path.relative_to(ROOT)}:{line_of(text, m.start())}"
            out.append((m.group(1), msg, where))
    return out


ERROR_CTOR_RE = re.compile(r"\b(CliError::(?:usage|store|not_found)|StoreError::(?:fatal|transient|config))\s*\(")


def error_messages():
    """[(constructor, literal message, 'file:line')] of error constructors called with a literal."""
    out = []
    for path in rust_files():
        text = blank_comments(without_tests(path.read_text(encoding="utf-8")))
        for m in ERROR_CTOR_RE.finditer(text):
            args, _ = call_args(text, m.end() - 1)
            msg = leading_literal(args[0]) if args else None
            if msg is not None:
                where = f"{path.relative_to(ROOT)}:{line_of(text, m.start())}"
                out.append((m.group(1), msg, where))
    return out


def fragments(message):
    """Fixed text of a format string: the parts between `{...}` placeholders."""
    tmp = message.replace("{{", "\0").replace("}}", "\1")
    parts = re.split(r"\{[^{}]*\}", tmp)
    return [p.replace("\0", "{").replace("\1", "}") for p in parts if p.strip()]


def documented(message, text):
    """All fixed fragments of `message`, in order, on one line of `text`."""
    frags = fragments(message)
    if not frags:
        return True
    pattern = re.compile(".*?".join(re.escape(f) for f in frags))
    return any(pattern.search(line) for line in text.splitlines())


# ---------------------------------------------------------------- tests


def fail_listing(case, problems):
    """Fail with one line per problem (and nothing else), or pass when there are none."""
    if problems:
        case.fail(f"{len(problems)} problem(s):\n" + "\n".join(problems))


class ConfigTableMatchesToml(unittest.TestCase):
    def setUp(self):
        self.toml = flatten(tomllib.loads(CONFIG.read_text(encoding="utf-8")))
        self.table = config_table()

    def test_every_toml_key_is_documented(self):
        missing = [k for k in self.toml if k not in self.table]
        fail_listing(
            self,
            [
                f"config key `{k}` (default {toml_repr(self.toml[k])}) is in config/jobarchive.toml "
                f"but has no row in the table under {CONFIG_HEADING!r} of {DOC_NAME}: add "
                f"| `{k}` | `{toml_repr(self.toml[k])}` | flag / env or 'file only' | what it does |"
                for k in missing
            ],
        )

    def test_every_documented_key_exists(self):
        extra = [k for k in self.table if k not in self.toml]
        fail_listing(
            self,
            [
                f"{DOC_NAME} documents config key `{k}` under {CONFIG_HEADING!r}, but "
                "config/jobarchive.toml has no such key: remove or rename the row"
                for k in extra
            ],
        )

    def test_documented_defaults_match(self):
        wrong = []
        for k, v in self.toml.items():
            row = self.table.get(k)
            if row is None:
                continue  # reported by test_every_toml_key_is_documented
            default = row[1] if len(row) > 1 else ""
            if toml_repr(v) not in default:
                wrong.append(
                    f"config key `{k}`: default in config/jobarchive.toml is {toml_repr(v)}, "
                    f"but {DOC_NAME} says {default!r}: update the row's default column"
                )
        fail_listing(self, wrong)


class MetricsDocumented(unittest.TestCase):
    def test_every_metric_is_documented(self):
        names = sorted(set(re.findall(r'"(jobarchive_[a-z0-9_]+)"', HTTP.read_text(encoding="utf-8"))))
        self.assertTrue(names, "no metric names found in agent/src/http.rs (did the format change?)")
        text = section(doc_text(), MONITORING_HEADING)
        missing = [n for n in names if not re.search(rf"\b{re.escape(n)}\b", text)]
        fail_listing(
            self,
            [
                f"metric `{n}` (agent/src/http.rs) is not in the {MONITORING_HEADING!r} section "
                f"of {DOC_NAME}: add a row to its metrics table (type, meaning, suggested alert)"
                for n in missing
            ],
        )


class MessagesDocumented(unittest.TestCase):
    def setUp(self):
        self.text = section(doc_text(), TROUBLESHOOTING_HEADING)

    def test_every_log_warning_and_error_is_documented(self):
        found = log_messages()
        self.assertTrue(found, "no tracing::warn!/error! calls found in agent/src (extraction broken?)")
        problems = []
        for level, msg, where in found:
            if msg is None:
                problems.append(f"{where}: {level}! call without a string-literal message; "
                                "give it one so it can be documented")
            elif not documented(msg, self.text):
                problems.append(
                    f"{level} message {msg!r} ({where}) is not in the {TROUBLESHOOTING_HEADING!r} "
                    f"section of {DOC_NAME}: add a row to 'Messages in the agent's log' "
                    f"| `{msg}` | {level} | meaning | what to do |"
                )
        fail_listing(self, problems)

    def test_every_error_message_is_documented(self):
        found = error_messages()
        self.assertTrue(found, "no CliError/StoreError constructors found in agent/src (extraction broken?)")
        problems = [
            f"{ctor} message {msg!r} ({where}) is not in the {TROUBLESHOOTING_HEADING!r} section of "
            f"{DOC_NAME}: add it (placeholders such as {{e}} may be written as ERROR, all on one "
            "line) with its exit code or kind, meaning and what to do"
            for ctor, msg, where in found
            if not documented(msg, self.text)
        ]
        fail_listing(self, problems)

    def test_exit_codes_are_documented(self):
        rows = table_rows(section(doc_text(), "### Exit codes"))
        codes = {r[0] for r in rows[1:]}
        for code in ("0", "1", "2", "3"):
            self.assertIn(code, codes, f"exit code {code} missing from '### Exit codes' in {DOC_NAME}")


README = ROOT / "README.md"
BINARY = ROOT / "target" / "debug" / "jobarchive"


def readme_commands():
    """[(argv after `jobarchive`, the line)] of every jobarchive command in README.md's sh blocks:
    pipes and `&&` split a line, leading VAR=value assignments are dropped, and
    `cargo run --release -- ARGS` counts as `jobarchive ARGS`."""
    out = []
    for block in re.findall(r"```sh\n(.*?)```", README.read_text(encoding="utf-8"), re.S):
        for line in block.splitlines():
            for part in re.split(r"\s*(?:&&|\|)\s*", line):
                words = shlex.split(part, comments=True) if part.strip() else []
                while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
                    words.pop(0)
                if words[:1] == ["jobarchive"]:
                    out.append((words[1:], line))
                elif words[:4] == ["cargo", "run", "--release", "--"]:
                    out.append((words[4:], line))
    return out


class ReadmeCommandsParse(unittest.TestCase):
    def test_every_readme_command_parses(self):
        commands = readme_commands()
        self.assertGreaterEqual(len(commands), 4, "README commands not found (extraction broken?)")
        if not BINARY.exists():
            self.skipTest(f"{BINARY} is not built (cargo build --workspace --bins --tests)")
        problems = []
        for argv, line in commands:
            run = subprocess.run([str(BINARY), *argv, "--help"], capture_output=True, text=True)
            if run.returncode != 0:
                problems.append(f"README.md: `{line}` does not parse: {run.stderr.strip()}")
        fail_listing(self, problems)


class ExtractionSelfTest(unittest.TestCase):
    """The extractors on tricky inputs, so a pass above means something."""

    def test_multiline_macro_with_format_field(self):
        text = (
            'fn f() {\n    tracing::warn!(\n        stream = %format!("{}/{}", a, b),\n'
            '        was = 1, // a comment, with "quotes"\n        "the message; with, commas"\n    );\n}\n'
        )
        text = blank_comments(text)
        m = LOG_MACRO_RE.search(text)
        args, _ = call_args(text, m.end() - 1)
        self.assertEqual(
            next(leading_literal(a) for a in args if leading_literal(a) is not None),
            "the message; with, commas",
        )

    def test_fragments_and_documented(self):
        msg = "cannot listen on {} (http_listen): {e}"
        self.assertEqual(fragments(msg), ["cannot listen on ", " (http_listen): "])
        self.assertTrue(documented(msg, "| `cannot listen on ADDR (http_listen): ERROR` |"))
        self.assertFalse(documented(msg, "cannot listen on\n(http_listen): "))

    def test_escapes(self):
        self.assertEqual(leading_literal(r'format!("a \"b\" \
            c {x:?}", x)'), 'a "b" c {x:?}')
        self.assertEqual(leading_literal('r#"raw "q""#'), 'raw "q"')
        self.assertIsNone(leading_literal("e.to_string()"))


if __name__ == "__main__":
    unittest.main()
