#!/usr/bin/env python3
"""Static check: every `libc` item parjob uses outside Linux-only code exists on macOS and FreeBSD.

CI builds only on Linux, so a `libc::pipe2` that slips into `cfg(unix)` code would break the
macOS and FreeBSD builds unnoticed. This script reads the Rust sources instead of compiling them.

1. Our side: every .rs file under runtime/src is tokenized (strings, raw strings, chars versus
   lifetimes, line/doc comments and nested block comments are understood) and each use of
   `libc::NAME` (also `libc::NAME::MAX`, `libc::{A, B}`) is recorded with the cfg predicates
   around it: `#[cfg]` on the enclosing items/statements/fields/arms, `#![cfg]`, and the cfg of
   the `mod x;` declarations leading to the file from lib.rs.
2. A use counts for a target when its cfg predicates are not provably false there (three-valued
   logic: `feature`, `test`, `docsrs`, ... are unknown, i.e. possibly true).
3. libc's side: starting at src/lib.rs, `mod`, `use`, `cfg_if!` and `#[cfg]` are followed for a
   concrete target (macOS x86_64 and aarch64, FreeBSD x86_64 with build.rs's default `freebsd12`
   cfg and the default `std` feature), definitions are collected (also inside `s!`, `f!`,
   `extern` blocks, `c_enum!`, ...), and the crate's public names are resolved through
   `pub use` globs and named re-exports, honouring `pub` versus `pub(crate)`. A name must
   exist on every target of an OS that compiles the use (both macOS architectures).

Approximations: the extent of an attributed item is found with a bracket-depth scanner (a
struct field or expression carrying `#[cfg]` ends at the first depth-0 `,`, so a generic type
such as `Map<A, B>` there would end it early); macros other than `cfg_if!`/`c_enum!` are read as
if their body were plain items; named re-exports in libc are trusted without being resolved;
`cfg_attr` is ignored; `use libc::*` is reported but not checked.

Usage: libc_check.py [SRC_DIR] [--libc DIR] [--list] [--self-test]
"""

import argparse
import bisect
import glob
import os
import re
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TARGETS = {
    "macos": [
        {"name": "x86_64", "target_os": "macos", "target_vendor": "apple", "target_arch": "x86_64"},
        {"name": "aarch64", "target_os": "macos", "target_vendor": "apple", "target_arch": "aarch64"},
    ],
    "freebsd": [
        {"name": "x86_64", "target_os": "freebsd", "target_vendor": "unknown",
         "target_arch": "x86_64", "flags": {"freebsd12"}},  # build.rs's default version
    ],
}
COMMON = {"target_family": "unix", "target_env": "", "target_abi": "",
          "target_pointer_width": "64", "target_endian": "little"}
LIBC_FEATURES = {"std"}  # libc's default features
OPEN = {"(": ")", "[": "]", "{": "}"}
CLOSE = {")", "]", "}"}

# ----------------------------------------------------------------------------- tokenizer

TOKEN_RE = re.compile(r"""
    (?P<ws>\s+)
  | (?P<comment>//[^\n]*)
  | (?P<block>/\*)
  | (?P<raw>[bc]?r\#*")
  | (?P<str>[bc]?"(?:[^"\\]|\\.)*")
  | (?P<char>b?'(?:[^'\\\n]|\\(?:u\{[0-9a-fA-F_]*\}|x[0-9a-fA-F]{2}|.))')
  | (?P<lt>'[A-Za-z_]\w*)
  | (?P<id>(?:r\#)?[A-Za-z_]\w*)
  | (?P<num>\d\w*)
  | (?P<punct>::|=>|->|.)
""", re.X | re.S)


def skip_block_comment(text, pos):
    """Returns the offset after the (possibly nested) block comment starting at pos."""
    depth, pos = 0, pos
    while pos < len(text):
        if text.startswith("/*", pos):
            depth, pos = depth + 1, pos + 2
        elif text.startswith("*/", pos):
            depth, pos = depth - 1, pos + 2
            if depth == 0:
                return pos
        else:
            pos += 1
    return pos


class Source:
    """One Rust file as tokens (kind, text, offset) with the bracket pairs resolved."""

    def __init__(self, path, text=None):
        self.path = path
        if text is None:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        self.toks = self.tokenize(text)
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.pair = [-1] * len(self.toks)
        stack = []
        for i, (kind, t, _) in enumerate(self.toks):
            if kind == "punct" and t in OPEN:
                stack.append(i)
            elif kind == "punct" and t in CLOSE and stack and OPEN[self.toks[stack[-1]][1]] == t:
                j = stack.pop()
                self.pair[i], self.pair[j] = j, i

    @staticmethod
    def tokenize(text):
        toks, pos = [], 0
        while pos < len(text):
            m = TOKEN_RE.match(text, pos)
            kind = m.lastgroup
            if kind == "block":
                pos = skip_block_comment(text, pos)
            elif kind == "raw":
                close = text.find('"' + "#" * m.group().count("#"), m.end())
                end = len(text) if close < 0 else close + 1 + m.group().count("#")
                toks.append(("str", text[pos:end], pos))
                pos = end
            else:
                if kind not in ("ws", "comment"):
                    toks.append((kind, m.group(), pos))
                pos = m.end()
        return toks

    def text(self, i):
        return self.toks[i][1] if 0 <= i < len(self.toks) else ""

    def kind(self, i):
        return self.toks[i][0] if 0 <= i < len(self.toks) else ""

    def line(self, i):
        return bisect.bisect_right(self.line_starts, self.toks[i][2])


def module_dir(path):
    """Directory holding the files of the child modules of the module in `path`."""
    if os.path.basename(path) in ("lib.rs", "main.rs", "mod.rs"):
        return os.path.dirname(path)
    return os.path.splitext(path)[0]

# ----------------------------------------------------------------------------- cfg predicates


def parse_pred(toks, i):
    """Parses the cfg predicate at toks[i] into ('kv', k, v), ('flag', n) or (fn, [args])."""
    name, i = toks[i][1], i + 1
    if i < len(toks) and toks[i][1] == "=":
        return ("kv", name, toks[i + 1][1].strip('"')), i + 2
    if i < len(toks) and toks[i][1] == "(":
        args, i = [], i + 1
        while i < len(toks) and toks[i][1] != ")":
            arg, i = parse_pred(toks, i)
            args.append(arg)
            if i < len(toks) and toks[i][1] == ",":
                i += 1
        return (name, args), i + 1
    return ("flag", name), i


def attribute(src, i):
    """Reads the attribute at `#`: returns (index after it, inner?, cfg predicate, path value)."""
    j = i + 1
    inner = src.text(j) == "!"
    j += inner
    close = src.pair[j] if src.text(j) == "[" else -1
    if close < 0:  # not an attribute after all
        return i + 1, False, None, None
    body = src.toks[j + 1:close]
    pred = path = None
    if len(body) > 1 and body[0][1] == "cfg" and body[1][1] == "(":
        args = parse_pred(body, 0)[0][1]
        pred = args[0] if args else None
    elif len(body) > 2 and body[0][1] == "path" and body[1][1] == "=":
        path = body[2][1].strip('"')
    return close + 1, inner, pred, path


def evaluate(pred, look):
    """Three-valued evaluation: True, False, or None (unknown)."""
    kind = pred[0]
    if kind == "kv":
        return look(pred[1], pred[2])
    if kind == "flag":
        return look(pred[1], None)
    values = [evaluate(p, look) for p in pred[1]]
    if kind == "all":
        return False if False in values else (True if all(v is True for v in values) else None)
    if kind == "any":
        return True if True in values else (False if all(v is False for v in values) else None)
    if kind == "not" and values:
        return None if values[0] is None else not values[0]
    return None


def user_lookup(target):
    """cfg values as seen by our crate: features, test, docsrs... are unknown."""
    def look(key, value):
        if value is None:
            return key == "unix" if key in ("unix", "windows") else None
        if key in target:
            return target[key] == value
        return None
    return look


def libc_lookup(target):
    """cfg values as seen by libc on a concrete target: anything unset is false."""
    def look(key, value):
        if value is None:
            return key == "unix" or key in target.get("flags", ())
        if key == "feature":
            return value in LIBC_FEATURES
        return target.get(key) == value
    return look


def fmt_pred(p):
    if p[0] == "kv":
        return f'{p[1]} = "{p[2]}"'
    if p[0] == "flag":
        return p[1]
    return f"{p[0]}({', '.join(fmt_pred(a) for a in p[1])})"

# ----------------------------------------------------------------------------- our crate

BRACED = {"fn", "mod", "impl", "trait", "struct", "enum", "union", "macro_rules",
          "loop", "while", "for", "if", "match", "{"}
SEMI = {"let", "const", "static", "use", "type"}
QUALIFIERS = {"pub", "unsafe", "safe", "async", "extern", "default"}


def item_end(src, i, limit):
    """Index of the last token of the item/statement/field/arm/expression starting at i.

    Items and block-like statements end at the brace closing their first depth-0 block (or
    an earlier `;`), `let`/`const`/`use`... at their `;`, anything else at a depth-0 `;` or
    `,`, the block right after a match arm's `=>`, or the enclosing closing bracket.
    """
    k = i
    while k < limit:
        t = src.text(k)
        if t == "pub" and src.text(k + 1) == "(":
            k = src.pair[k + 1] + 1
        elif t in QUALIFIERS or src.toks[k][0] == "str" or (
                t == "const" and src.text(k + 1) in ("fn", "unsafe", "async", "extern")):
            k += 1
        else:
            break
    head = src.text(k)
    mode = "braced" if head in BRACED else "semi" if head in SEMI else "expr"
    j = i
    while j < limit:
        t = src.text(j)
        if src.toks[j][0] == "punct" and t in OPEN:
            close = src.pair[j]
            if close < 0:
                return limit - 1
            if t == "{" and mode == "braced" and src.text(close + 1) != "else":
                return close
            if t == "{" and mode == "expr" and src.text(j - 1) in ("=>", "!"):
                return close
            j = close + 1
            continue
        if t == ";" or (t == "," and mode == "expr"):
            return j
        j += 1
    return limit - 1


class FileScan:
    """The libc uses, module declarations and cfg ranges of one file of our crate."""

    def __init__(self, src):
        self.src, self.ranges, self.file_preds = src, [], []
        self.uses, self.mods, self.inline, self.globs = [], [], [], []
        path_attrs, stack, i, n = {}, [], 0, len(src.toks)
        while i < n:
            kind, t, _ = src.toks[i]
            if kind == "punct" and t in OPEN:
                stack.append(i)
            elif kind == "punct" and t in CLOSE and stack:
                stack.pop()
            elif kind == "punct" and t == "#" and src.text(i + 1) in ("[", "!"):
                i = self.attributes(i, stack, path_attrs)
                continue
            elif kind == "id" and t == "libc" and src.text(i + 1) == "::":
                if not (src.text(i - 1) == "::" and src.kind(i - 2) == "id"):
                    self.libc_path(i)
            elif kind == "id" and t == "mod" and src.kind(i + 1) == "id":
                if src.text(i + 2) == ";":
                    self.mods.append((src.text(i + 1), i, path_attrs.get(i + 2)))
                elif src.text(i + 2) == "{":
                    self.inline.append((i + 2, src.pair[i + 2], src.text(i + 1)))
            i += 1

    def attributes(self, i, stack, path_attrs):
        """Records the cfg ranges of the attributes starting at i; returns where to go on."""
        src, preds, path = self.src, [], None
        start = i
        while src.text(i) == "#" and src.text(i + 1) in ("[", "!"):
            i, inner, pred, p = attribute(src, i)
            if inner and pred:
                if stack:
                    self.ranges.append((stack[-1], src.pair[stack[-1]], pred))
                else:
                    self.file_preds.append(pred)
            elif pred:
                preds.append(pred)
            path = path or p
        if preds or path:
            limit = src.pair[stack[-1]] if stack else len(src.toks)
            end = item_end(src, i, limit if limit >= 0 else len(src.toks))
            self.ranges.extend((start, end, p) for p in preds)
            if path:
                path_attrs[end] = path
        return i

    def libc_path(self, i):
        """Records the libc name(s) of the path `libc::...` at i."""
        src, k = self.src, i + 2
        if src.kind(k) == "id":
            self.uses.append((src.text(k), i))
        elif src.text(k) == "*":
            self.globs.append(i)
        elif src.text(k) == "{":
            j, first = k + 1, True
            while j < src.pair[k]:
                t = src.text(j)
                if t == ",":
                    first = True
                elif src.toks[j][0] == "punct" and t in OPEN:
                    j = src.pair[j]
                elif first and src.toks[j][0] == "id" and t != "self":
                    self.uses.append((t, j))
                    first = False
                j += 1

    def preds_at(self, i):
        return self.file_preds + [p for a, b, p in self.ranges if a <= i <= b]


class Site:
    def __init__(self, name, path, line, preds):
        self.name, self.path, self.line, self.preds = name, path, line, preds

    def compiled_for(self, target):
        return evaluate(("all", self.preds), user_lookup(dict(COMMON, **target))) is not False

    def where(self, root):
        rel = os.path.relpath(self.path, root)
        return f"{self.path if rel.startswith('..') else rel}:{self.line}"


def scan_crate(src_dir, warn):
    """All libc use sites of the crate whose sources are in src_dir, following `mod` from lib.rs."""
    sites, seen = [], set()

    def visit(path, inherited):
        if path in seen:
            return
        seen.add(path)
        scan = FileScan(Source(path))
        for i in scan.globs:
            warn(f"{path}:{scan.src.line(i)}: `libc::*` is not checked")
        for name, i in scan.uses:
            sites.append(Site(name, path, scan.src.line(i), inherited + scan.preds_at(i)))
        for name, i, path_attr in scan.mods:
            inline = [n for o, c, n in sorted(scan.inline) if o < i < c]
            base = os.path.join(module_dir(path), *inline)
            if path_attr:
                anchor = base if inline else os.path.dirname(path)
                candidates = [os.path.join(anchor, path_attr)]
            else:
                candidates = [os.path.join(base, name + ".rs"), os.path.join(base, name, "mod.rs")]
            found = [c for c in candidates if os.path.isfile(c)]
            if found:
                visit(os.path.normpath(found[0]), inherited + scan.preds_at(i))
            else:
                warn(f"{path}:{scan.src.line(i)}: no file for `mod {name};`")

    for root in ("lib.rs", "main.rs"):
        if os.path.isfile(os.path.join(src_dir, root)):
            visit(os.path.normpath(os.path.join(src_dir, root)), [])
    for path in sorted(glob.glob(os.path.join(src_dir, "**", "*.rs"), recursive=True)):
        if os.path.normpath(path) not in seen:
            warn(f"{path}: not reached by any `mod`; checked as if ungated")
            visit(os.path.normpath(path), [])
    return sites

# ----------------------------------------------------------------------------- libc's side


class Module:
    def __init__(self, parent):
        self.parent = parent
        self.children = {}  # name -> Module
        self.defs = {}      # name -> public?
        self.named = {}     # bound name -> (path, public?)
        self.globs = []     # (path, public?)


class LibcModel:
    """The public names of the libc crate in libc_dir when compiled for `target`."""

    def __init__(self, libc_dir, target, cache):
        self.look = libc_lookup(dict(COMMON, **target))
        self.cache, self.root, self.memo = cache, Module(None), {}
        self.found, self.busy = {}, set()  # lookup results, lookups in progress
        self.load(self.root, os.path.join(libc_dir, "src", "lib.rs"))
        self.names = self.exports(self.root)

    def load(self, mod, path):
        if path not in self.cache:
            self.cache[path] = Source(path)
        src = self.cache[path]
        self.items(mod, src, 0, len(src.toks), module_dir(path))

    def active(self, preds):
        return all(evaluate(p, self.look) is True for p in preds)

    def items(self, mod, src, i, end, base):
        """Reads the items in src.toks[i:end] into mod; base is its child-module directory."""
        while i < end:
            preds, path = [], None
            while src.text(i) == "#" and src.text(i + 1) in ("[", "!"):
                i, inner, pred, p = attribute(src, i)
                if inner and pred and not self.active([pred]):
                    return
                if pred and not inner:
                    preds.append(pred)
                path = path or p
            if i >= end:
                return
            if src.text(i) == ";":
                i += 1
                continue
            last = item_end(src, i, end)
            if self.active(preds):
                self.item(mod, src, i, last, base, path)
            i = last + 1

    def item(self, mod, src, i, last, base, path_attr):
        public = src.text(i) == "pub" and src.text(i + 1) != "("
        k = i
        while k <= last:
            t = src.text(k)
            if t == "pub" and src.text(k + 1) == "(":
                k = src.pair[k + 1] + 1
            elif t in QUALIFIERS or src.toks[k][0] == "str" or (
                    t == "const" and src.text(k + 1) in ("fn", "unsafe", "safe", "async", "extern")):
                k += 1
            else:
                break
        kw, name = src.text(k), src.text(k + 1)
        if kw == "mod" and src.text(k + 2) == ";":
            child = mod.children.setdefault(name, Module(mod))
            files = ([os.path.join(os.path.dirname(src.path), path_attr)] if path_attr else
                     [os.path.join(base, name + ".rs"), os.path.join(base, name, "mod.rs")])
            for f in files:
                if os.path.isfile(f):
                    self.load(child, os.path.normpath(f))
                    break
        elif kw == "mod" and src.text(k + 2) == "{":
            child = mod.children.setdefault(name, Module(mod))
            self.items(child, src, k + 3, src.pair[k + 2], os.path.join(base, name))
        elif kw == "use":
            for path, bound in use_tree(src, k + 1, last + 1 if src.text(last) != ";" else last, []):
                if bound == "*":
                    mod.globs.append((path, public))
                else:
                    old = mod.named.get(bound, (path, False))
                    mod.named[bound] = (old[0], old[1] or public)
        elif kw in ("fn", "const", "static", "struct", "union", "enum", "type", "trait"):
            if name == "mut":
                name = src.text(k + 2)
            if name != "_" and src.toks[k + 1][0] == "id":
                mod.defs[name] = mod.defs.get(name, False) or public
        elif kw == "{":  # extern block
            self.items(mod, src, k + 1, src.pair[k], base)
        elif src.toks[k][0] == "id" and name == "!" and src.pair[k + 2] > 0:
            body, close = k + 3, src.pair[k + 2]
            if kw == "cfg_if":
                self.cfg_if(mod, src, body, close, base)
            elif kw == "c_enum":
                self.c_enum(mod, src, body, close)
            elif kw != "macro_rules":
                self.items(mod, src, body, close, base)

    def cfg_if(self, mod, src, i, end, base):
        """`if #[cfg(P)] { .. } else if #[cfg(Q)] { .. } else { .. }`: reads the first true branch."""
        taken = False
        while i < end:
            t = src.text(i)
            if t == "if" and src.text(i + 1) == "#":
                after, _, pred, _ = attribute(src, i + 1)
                if not taken and pred and self.active([pred]):
                    taken = True
                    self.items(mod, src, after + 1, src.pair[after], base)
                i = src.pair[after] + 1
            elif t == "else" and src.text(i + 1) == "{":
                if not taken:
                    self.items(mod, src, i + 2, src.pair[i + 1], base)
                return
            else:
                i += 1

    def c_enum(self, mod, src, i, end):
        """`c_enum! { pub enum name { pub A, pub B = 3, } }` defines type `name` and consts."""
        while i < end:
            if src.text(i) != "enum":
                i += 1
                continue
            k = i + 1
            if src.text(k) == "#":  # `#anon`: no type
                k += 2
            else:
                mod.defs[src.text(k)] = src.text(i - 1) == "pub"
                k += 1
            close = src.pair[k]
            j = k + 1
            while j < close:
                preds = []
                while src.text(j) == "#":
                    j, _, pred, _ = attribute(src, j)
                    preds += [pred] if pred else []
                public = src.text(j) == "pub"
                name = src.text(j + public)
                if self.active(preds) and src.toks[j + public][0] == "id":
                    mod.defs[name] = mod.defs.get(name, False) or public
                j = item_end(src, j, close) + 1
            i = close + 1

    def resolve(self, mod, path):
        """The module that `path` names from inside mod, or None (external or unknown)."""
        for n, seg in enumerate(path):
            if n == 0 and seg == "crate":
                mod = self.root
            elif seg == "super":
                mod = mod.parent
            elif seg != "self":
                mod = None if n == 0 and seg in ("core", "std", "alloc") else self.lookup(mod, seg)
            if mod is None:
                return None
        return mod

    def lookup(self, mod, name):
        """The module bound to `name` in mod: a child, a named import or through a glob."""
        key = (id(mod), name)
        if key in self.found or key in self.busy:  # busy: an import cycle, no answer there
            return self.found.get(key)
        self.busy.add(key)
        result = mod.children.get(name)
        if result is None and name in mod.named:
            result = self.resolve(mod, mod.named[name][0])
        for path, _ in mod.globs if result is None else ():
            target = self.resolve(mod, path)
            result = target and self.lookup(target, name)
            if result:
                break
        self.busy.discard(key)
        if result:
            self.found[key] = result
        return result

    def exports(self, mod):
        """Names visible as `pub` in mod: public items, `pub use` names and `pub use` globs."""
        if id(mod) in self.memo:
            return self.memo[id(mod)]
        self.memo[id(mod)] = set()  # breaks glob cycles
        names = {n for n, public in mod.defs.items() if public}
        names |= {n for n, (_, public) in mod.named.items() if public}
        for path, public in mod.globs:
            target = self.resolve(mod, path) if public else None
            if target is not None:
                names |= self.exports(target)
        self.memo[id(mod)] = names
        return names


def use_tree(src, i, end, prefix):
    """Yields (path, bound name) for the use tree in src.toks[i:end]; '*' for globs."""
    path = list(prefix)
    while i < end:
        t = src.text(i)
        if t == "{":
            close, start, j = src.pair[i], i + 1, i + 1
            while j <= close:
                if j == close or src.text(j) == ",":
                    if j > start:
                        yield from use_tree(src, start, j, path)
                    start = j + 1
                elif src.text(j) in OPEN:
                    j = src.pair[j]
                j += 1
            return
        if t == "*":
            yield path, "*"
            return
        if t == "as":
            yield path, src.text(i + 1)
            return
        if t != "::":
            path.append(t)
        i += 1
    if path and path[-1] == "self":
        path.pop()
    if path:
        yield path, path[-1]

# ----------------------------------------------------------------------------- driver


def libc_dirs(repo):
    """The registry directories of the libc versions Cargo.lock pins for parjob (or all)."""
    try:
        with open(os.path.join(repo, "Cargo.lock"), encoding="utf-8") as f:
            blocks = f.read().split("[[package]]")
    except OSError:
        blocks = []
    versions, wanted = [], []
    for block in blocks:
        name = re.search(r'^name = "([^"]+)"', block, re.M)
        version = re.search(r'^version = "([^"]+)"', block, re.M)
        if name and version and name.group(1) == "libc":
            versions.append(version.group(1))
        if name and name.group(1) == "parjob":
            wanted += re.findall(r'^\s*"libc(?: ([^" ]+))?",?$', block, re.M)
    wanted = [v or versions[0] for v in wanted if v or len(versions) == 1] or versions
    home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    dirs = [d for v in wanted for d in glob.glob(os.path.join(home, "registry/src/*/libc-" + v))]
    if not dirs:  # fall back to the newest 0.2 in the registry
        found = glob.glob(os.path.join(home, "registry/src/*/libc-0.2.*"))
        key = lambda d: [int(x) if x.isdigit() else 0 for x in d.rsplit("-", 1)[1].split(".")]
        dirs = sorted(found, key=key)[-1:]
    return sorted(set(dirs))


def check(sites, libc_dir):
    """{os: (names used, {missing name: (arches, sites)})} against the libc in libc_dir."""
    cache, result = {}, {}
    for os_name, targets in TARGETS.items():
        used, missing = set(), {}
        for target in targets:
            names = LibcModel(libc_dir, target, cache).names
            for site in sites:
                if site.compiled_for(target):
                    used.add(site.name)
                    if site.name not in names:
                        arches, where = missing.setdefault(site.name, (set(), []))
                        arches.add(target["name"])
                        if site not in where:
                            where.append(site)
        result[os_name] = (used, missing)
    return result


def report(sites, libc_dir, root, listing):
    """Prints the findings for one libc version; returns True if nothing is missing."""
    version = os.path.basename(libc_dir).split("-", 1)[1]
    result = check(sites, libc_dir)
    if listing:
        for name in sorted({s.name for s in sites}):
            print(name)
            for s in (s for s in sites if s.name == name):
                oses = [o for o, ts in TARGETS.items() if any(s.compiled_for(t) for t in ts)]
                gate = fmt_pred(("all", s.preds)) if s.preds else "ungated"
                print(f"    {s.where(root)}  [{gate}] -> {', '.join(oses) or 'linux-only'}")
    outside, bad = set(), []
    for os_name, (used, missing) in result.items():
        outside |= used
        arches = "/".join(t["name"] for t in TARGETS[os_name])
        print(f"{os_name} ({arches}): {len(used)} libc names used, {len(missing)} missing")
        for name in sorted(missing):
            only, where = missing[name]
            note = "" if len(only) == len(TARGETS[os_name]) else f" [{'/'.join(sorted(only))} only]"
            print(f"  {name}{note}: {', '.join(s.where(root) for s in where)}")
        if missing:
            bad.append(f"{len(missing)} missing for {os_name}")
    status = "; ".join(bad) if bad else "all defined for " + " and ".join(TARGETS)
    print(f'libc check: {len(outside)} items used outside cfg(target_os = "linux"); '
          f"{status} (libc {version})")
    return not bad


SNIPPET = r'''
#[cfg(target_os = "linux")]
mod m;
#[cfg(target_os = "linux")]
fn f() { libc::pipe2(p, 0); if x { libc::F_SETPIPE_SZ } else { 0 }; }
fn g<'a>(s: &'a str) -> char {
    unsafe { libc::pipe(p) };
    // libc::bogus_line
    /* libc::bogus_block /* nested libc::bogus_nested */ libc::bogus_after */
    let s = "libc::bogus_str \" libc::bogus_escaped";
    let r = r#"libc::bogus_raw " still raw"#;
    let q = '"'; libc::fork();
    #[cfg(target_os = "linux")]
    let x = if a { libc::PR_SET_PDEATHSIG } else { libc::memfd_create };
    libc::waitpid(0, p, 0);
    match n {
        #[cfg(target_os = "linux")]
        1 => libc::SIGRTMIN,
        2 => libc::SIGUSR2,
        #[cfg(any(target_os = "linux", target_os = "android"))]
        3 => { libc::prctl(0) }
        4 => libc::SIGUSR1,
    }
    '{'
}
#[cfg(not(target_os = "linux"))]
fn h() { libc::kill(0, libc::SIGKILL); }
#[cfg(windows)]
fn w() { libc::windows_only(); }
#[cfg(all(unix, not(feature = "x"), target_os = "linux"))]
const C: i32 = { libc::O_TMPFILE };
#[cfg(feature = "x")]
use libc::{c_int, c_uint as U};
'''
SNIPPET_EXPECTED = {"pipe", "fork", "waitpid", "SIGUSR2", "SIGUSR1", "kill", "SIGKILL",
                    "c_int", "c_uint", "getpid", "mmap"}


def self_test(libc_dir):
    """Checks the scanner on SNIPPET and the libc model on known names; returns success."""
    ok = True

    def expect(cond, what):
        nonlocal ok
        print(("ok    " if cond else "FAIL  ") + what)
        ok = ok and cond

    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "lib.rs"), "w") as f:
            f.write(SNIPPET + "mod n;\nfn after() { libc::getpid(); }\n")
        with open(os.path.join(tmp, "m.rs"), "w") as f:
            f.write("fn m() { libc::shm_open_linux_only(); }\n")
        with open(os.path.join(tmp, "n.rs"), "w") as f:
            f.write('#![cfg(target_os = "linux")]\nfn n() { libc::inner_gated(); }\n'
                    "#[cfg(unix)] mod deep { fn d() { libc::nested_gated(); } }\n")
        with open(os.path.join(tmp, "orphan.rs"), "w") as f:
            f.write("fn o() { libc::mmap(); }\n")
        sites = scan_crate(tmp, lambda msg: None)
        for os_name, targets in TARGETS.items():
            got = {s.name for s in sites if any(s.compiled_for(t) for t in targets)}
            expect(got == SNIPPET_EXPECTED,
                   f"scanner, {os_name}: counted names "
                   f"(extra {sorted(got - SNIPPET_EXPECTED)}, lacking {sorted(SNIPPET_EXPECTED - got)})")
        all_names = {s.name for s in sites}
        expect(not any(n.startswith("bogus") for n in all_names), "comments and strings ignored")
        expect({"pipe2", "shm_open_linux_only", "inner_gated", "nested_gated"} <= all_names,
               "gated uses are seen (and skipped by cfg, not lost)")
    if not libc_dir:
        expect(False, "libc sources found")
        return False
    cache = {}
    models = {(o, t["name"]): LibcModel(libc_dir, t, cache).names
              for o, ts in TARGETS.items() for t in ts}
    macos = [names for (o, _), names in models.items() if o == "macos"]
    for name in ("pipe2", "F_SETPIPE_SZ", "memfd_create", "PR_SET_PDEATHSIG"):
        expect(all(name not in names for names in macos), f"libc: {name} missing for macos")
    for name in ("pipe", "fork", "waitpid", "kill", "FD_CLOEXEC", "mmap", "shm_open",
                 "c_int", "c_void", "pid_t", "STDERR_FILENO"):
        expect(all(name in names for names in models.values()),
               f"libc: {name} defined for macos and freebsd")
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("src", nargs="?", default=os.path.join(REPO, "runtime", "src"),
                        help="sources to scan (default: runtime/src of this repository)")
    parser.add_argument("--libc", help="libc crate directory (default: from Cargo.lock)")
    parser.add_argument("--list", action="store_true", help="print every name and use site")
    parser.add_argument("--self-test", action="store_true", help="run built-in checks")
    args = parser.parse_args()
    dirs = [args.libc] if args.libc else libc_dirs(REPO)
    if args.self_test:
        return 0 if self_test(dirs[0] if dirs else None) else 1
    if not dirs or not os.path.isfile(os.path.join(dirs[0], "src", "lib.rs")):
        print("libc check: libc sources not found (run `cargo fetch` or pass --libc DIR)")
        return 2
    sites = scan_crate(args.src, lambda msg: print("warning: " + msg, file=sys.stderr))
    results = [report(sites, d, REPO, args.list) for d in dirs]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
