#!/usr/bin/env python3
"""Render charts/ecstatic without helm and check what comes out.

A stand-in for `helm template` + `helm lint` on machines without helm: it
implements the subset of Go templates and Sprig that the chart uses (if,
else if, with, define, include, variables, and the functions in FUNCS),
renders the chart for several sets of values, parses every document as YAML
and checks it structurally (selectors match pod labels, probes and Services
name ports that exist, mounts name volumes that exist, env values are
strings, no secret material outside the Secret) and, when the
`kubernetes-validate` package is installed, strictly against Kubernetes'
schemas (unknown fields and wrong types fail). It is not helm: where the two
differ, helm is right. With helm installed, also run
`helm lint charts/ecstatic` and `helm template charts/ecstatic`.

Usage: python3 charts/render_check.py [--print NAME]  (NAME: a case below)
"""

import base64
import hashlib
import json
import random
import re
import string
import sys
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parent / "ecstatic"


class RenderError(Exception):
    pass


# ---------------------------------------------------------------- lexing

ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)


def lex(src):
    """Text and action pieces, with Go's `{{-` / `-}}` trimming applied."""
    pieces, pos = [], 0
    for m in ACTION.finditer(src):
        pieces.append(["text", src[pos : m.start()]])
        pieces.append(["action", m.group(2).strip(), bool(m.group(1)), bool(m.group(3))])
        pos = m.end()
    pieces.append(["text", src[pos:]])
    for i, p in enumerate(pieces):
        if p[0] != "action":
            continue
        if p[2]:
            pieces[i - 1][1] = pieces[i - 1][1].rstrip(" \t\r\n")
        if p[3]:
            pieces[i + 1][1] = pieces[i + 1][1].lstrip(" \t\r\n")
    return [p for p in pieces if not (p[0] == "action" and p[1].startswith("/*"))]


TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<num>-?\d+(?:\.\d+)?)|(?P<op>:=|=|\||\(|\))'
    r"|(?P<word>[$.]?[A-Za-z0-9_$.]*))"
)


def tokens(text):
    out, pos = [], 0
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise RenderError(f"cannot read {text[pos:]!r}")
        pos = m.end()
        kind = m.lastgroup
        if kind == "str":
            out.append(("str", json.loads(m.group(kind))))
        elif kind == "num":
            out.append(("num", float(m.group(kind))))
        elif kind:
            out.append((kind, m.group(kind)))
    return out


# ---------------------------------------------------------------- parsing


def parse(pieces):
    """A tree of ("text", s) / ("out", toks) / ("if", [(cond, body)], else)
    / ("with", cond, body, else) / ("define", name, body)."""
    root, stack = [], []
    cur = root
    for p in pieces:
        if p[0] == "text":
            cur.append(("text", p[1]))
            continue
        act = p[1]
        word = act.split(None, 1)[0] if act else ""
        rest = act[len(word) :].strip()
        if word in ("if", "with"):
            node = {"kind": word, "branches": [(tokens(rest), [])], "else": None}
            cur.append(node)
            stack.append((node, cur))
            cur = node["branches"][0][1]
        elif word == "define":
            node = {"kind": "define", "name": json.loads(rest), "body": []}
            cur.append(node)
            stack.append((node, cur))
            cur = node["body"]
        elif word == "else":
            node = stack[-1][0]
            if rest.startswith("if "):
                node["branches"].append((tokens(rest[3:]), []))
                cur = node["branches"][-1][1]
            else:
                node["else"] = []
                cur = node["else"]
        elif word == "end":
            _, cur = stack.pop()
        elif word in ("range", "block", "template"):
            raise RenderError(f"`{word}` is not supported by this checker")
        else:
            cur.append(("out", tokens(act)))
    if stack:
        raise RenderError("unclosed block")
    return root


# ---------------------------------------------------------------- values


def go_str(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if v == int(v):
            i = int(v)
            if abs(i) < 10**6:
                return str(i)
            d = str(abs(i))
            mant = d.rstrip("0")
            mant = mant[0] + ("." + mant[1:] if len(mant) > 1 else "")
            return ("-" if i < 0 else "") + f"{mant}e+{len(d) - 1:02d}"
        return repr(v)
    if isinstance(v, (dict, list)):
        raise RenderError(f"printing a collection: {v!r}")
    return str(v)


def truthy(v):
    return not (v is None or v is False or v == 0 or v == "" or v == {} or v == [])


def floats(v):
    """Helm reads every number in values as float64."""
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return float(v)
    if isinstance(v, dict):
        return {k: floats(x) for k, x in v.items()}
    if isinstance(v, list):
        return [floats(x) for x in v]
    return v


def to_yaml(v):
    def plain(x):
        if isinstance(x, float) and x == int(x):
            return int(x)
        if isinstance(x, dict):
            return {k: plain(y) for k, y in x.items()}
        if isinstance(x, list):
            return [plain(y) for y in x]
        return x

    return yaml.safe_dump(plain(v), default_flow_style=False, sort_keys=True).rstrip("\n")


def indent(n, s):
    return "\n".join(" " * n + line for line in s.split("\n"))


def go_quote(v):
    return json.dumps(go_str(v))


def required(msg, v):
    if not truthy(v):
        raise RenderError(f"required: {msg}")
    return v


def fail(msg):
    raise RenderError(f"fail: {msg}")


def go_int(v):
    return int(float(v)) if v not in (None, "") else 0


FUNCS = {
    "quote": go_quote,
    "int64": go_int,
    "int": go_int,
    "b64enc": lambda s: base64.b64encode(go_str(s).encode()).decode(),
    "sha256sum": lambda s: hashlib.sha256(go_str(s).encode()).hexdigest(),
    "randAlphaNum": lambda n: "".join(
        random.choice(string.ascii_letters + string.digits) for _ in range(int(n))
    ),
    "trunc": lambda n, s: go_str(s)[: int(n)],
    "trim": lambda s: go_str(s).strip(),
    "nindent": lambda n, s: "\n" + indent(int(n), go_str(s)),
    "indent": lambda n, s: indent(int(n), go_str(s)),
    "toYaml": to_yaml,
    "default": lambda d, v=None: v if truthy(v) else d,
    "required": required,
    "fail": fail,
    "printf": lambda f, *a: re.sub(r"%[sdv]", "{}", f).format(*map(go_str, a)),
    "join": lambda sep, xs: sep.join(go_str(x) for x in xs),
    "lookup": lambda *a: {},  # as in `helm template`: nothing in the cluster
    "hasKey": lambda d, k: k in d,
    "index": lambda d, k: d.get(k) if isinstance(d, dict) else d[int(k)],
    "dict": lambda *a: dict(zip(a[::2], a[1::2])),
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "not": lambda v: not truthy(v),
}


# ---------------------------------------------------------------- evaluation


class Renderer:
    def __init__(self, values, release="ecstatic"):
        chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
        self.root = {
            "Values": floats(values),
            "Release": {"Name": release, "Namespace": "default", "Service": "Helm"},
            "Chart": {
                "Name": chart["name"],
                "Version": chart["version"],
                "AppVersion": chart["appVersion"],
            },
            "Template": {"BasePath": "ecstatic/templates"},
        }
        self.defines = {}
        self.trees = {}
        for path in sorted((CHART / "templates").glob("*")):
            tree = parse(lex(path.read_text()))
            self.collect(tree)
            self.trees[path.name] = tree

    def collect(self, tree):
        for node in tree:
            if isinstance(node, dict):
                if node["kind"] == "define":
                    self.defines[node["name"]] = node["body"]
                else:
                    for _, body in node["branches"]:
                        self.collect(body)
                    self.collect(node["else"] or [])

    def field(self, base, chain):
        for name in [c for c in chain.split(".") if c]:
            if base is None:
                return None
            if not isinstance(base, dict):
                raise RenderError(f"field {name} of a non-map")
            base = base.get(name)
        return base

    def arg(self, tok, dot, scope):
        kind, text = tok
        if kind in ("str", "num"):
            return text
        if text == "true":
            return True
        if text == "false":
            return False
        if text.startswith("$"):
            name, _, chain = text.partition(".")
            for frame in reversed(scope):
                if name in frame:
                    return self.field(frame[name], chain)
            raise RenderError(f"undefined variable {name}")
        if text.startswith("."):
            return self.field(dot, text)
        if text in FUNCS:
            return FUNCS[text]()
        raise RenderError(f"unexpected {text!r}")

    def command(self, toks, dot, scope, piped):
        """One command of a pipeline: a function call or a single value."""
        args, i = [], 0
        while i < len(toks):
            kind, text = toks[i]
            if text == "(":
                depth, j = 1, i + 1
                while depth:
                    depth += {"(": 1, ")": -1}.get(toks[j][1], 0)
                    j += 1
                args.append(("val", self.pipeline(toks[i + 1 : j - 1], dot, scope)))
                i = j
                continue
            args.append(("tok", toks[i]))
            i += 1
        head = args[0]
        if head[0] == "tok" and head[1][0] == "word" and head[1][1] in FUNCS | {
            "include": 0,
            "and": 0,
            "or": 0,
        }:
            name = head[1][1]
            vals = [a[1] if a[0] == "val" else self.arg(a[1], dot, scope) for a in args[1:]]
            if piped is not None:
                vals.append(piped[0])
            if name == "include":
                return self.render(self.defines[vals[0]], vals[1], [{"$": vals[1]}])
            if name == "and":
                for v in vals:
                    if not truthy(v):
                        return v
                return vals[-1]
            if name == "or":
                for v in vals:
                    if truthy(v):
                        return v
                return vals[-1]
            return FUNCS[name](*vals)
        if len(args) != 1 or piped is not None:
            raise RenderError(f"cannot call {toks!r}")
        return head[1] if head[0] == "val" else self.arg(head[1], dot, scope)

    def pipeline(self, toks, dot, scope):
        cmds, depth, cur = [], 0, []
        for t in toks:
            if t[1] == "(":
                depth += 1
            elif t[1] == ")":
                depth -= 1
            if t == ("op", "|") and depth == 0:
                cmds.append(cur)
                cur = []
            else:
                cur.append(t)
        cmds.append(cur)
        piped = None
        for c in cmds:
            piped = (self.command(c, dot, scope, piped),)
        return piped[0]

    def action(self, toks, dot, scope):
        if len(toks) > 2 and toks[1][1] in (":=", "="):
            name = toks[0][1]
            value = self.pipeline(toks[2:], dot, scope)
            if toks[1][1] == ":=":
                scope[-1][name] = value
            else:
                for frame in reversed(scope):
                    if name in frame:
                        frame[name] = value
                        break
                else:
                    raise RenderError(f"assignment to undeclared {name}")
            return ""
        return go_str(self.pipeline(toks, dot, scope))

    def render(self, tree, dot, scope):
        out = []
        for node in tree:
            if isinstance(node, tuple):
                out.append(node[1] if node[0] == "text" else self.action(node[1], dot, scope))
                continue
            if node["kind"] == "define":
                continue
            done = False
            for cond, body in node["branches"]:
                value = self.pipeline(cond, dot, scope)
                if truthy(value):
                    inner = value if node["kind"] == "with" else dot
                    out.append(self.render(body, inner, scope + [{}]))
                    done = True
                    break
            if not done and node["else"] is not None:
                out.append(self.render(node["else"], dot, scope + [{}]))
        return "".join(out)

    def render_all(self):
        return {
            name: self.render(tree, self.root, [{"$": self.root}])
            for name, tree in self.trees.items()
            if name.endswith((".yaml", ".txt"))
        }


# ---------------------------------------------------------------- checks


def merge(base, over):
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def pod_spec(doc):
    return doc["spec"]["template"]["spec"]


def check(docs):
    problems = []
    names = set()
    pods = []
    for d in docs:
        for key in ("apiVersion", "kind", "metadata"):
            if key not in d:
                problems.append(f"document without {key}: {d}")
        ident = (d["kind"], d["metadata"]["name"])
        if ident in names:
            problems.append(f"duplicate {ident}")
        names.add(ident)
        if d["kind"] in ("Deployment", "StatefulSet"):
            tmpl = d["spec"]["template"]
            sel = d["spec"]["selector"]["matchLabels"]
            labels = tmpl["metadata"]["labels"]
            if any(labels.get(k) != v for k, v in sel.items()):
                problems.append(f"{ident}: selector {sel} does not match {labels}")
            pods.append(labels)
            spec = pod_spec(d)
            vols = {v["name"] for v in spec.get("volumes", [])}
            vols |= {t["metadata"]["name"] for t in d["spec"].get("volumeClaimTemplates", [])}
            for c in spec["containers"]:
                ports = {p["name"] for p in c.get("ports", [])}
                for p in c.get("ports", []):
                    if not isinstance(p["containerPort"], int):
                        problems.append(f"{ident}: port {p} not an integer")
                for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                    pr = c.get(probe)
                    if pr:
                        port = (pr.get("httpGet") or pr.get("tcpSocket"))["port"]
                        if port not in ports:
                            problems.append(f"{ident}: {probe} names unknown port {port}")
                for m in c.get("volumeMounts", []):
                    if m["name"] not in vols:
                        problems.append(f"{ident}: mount of unknown volume {m['name']}")
                for e in c.get("env", []):
                    if "value" in e and not isinstance(e["value"], str):
                        problems.append(f"{ident}: env {e['name']} is not a string")
                    if "value" not in e and "valueFrom" not in e:
                        problems.append(f"{ident}: env {e['name']} has no value")
                    if re.search(r"SECRET|KEY|DATABASE_URL", e["name"]) and "value" in e:
                        problems.append(f"{ident}: {e['name']} given in clear")
                if any(a.startswith("-") for a in c.get("args", []) + c.get("command", [])):
                    problems.append(f"{ident}: flags on the command line")
            if "resources" not in spec["containers"][0]:
                problems.append(f"{ident}: no resources")
        if d["kind"] == "ConfigMap" and re.search(r"(?i)secret|password", json.dumps(d["data"])):
            problems.append(f"{ident}: ConfigMap mentions a secret")
    for d in docs:
        if d["kind"] == "Service":
            sel = d["spec"]["selector"]
            if not any(all(p.get(k) == v for k, v in sel.items()) for p in pods):
                problems.append(f"Service {d['metadata']['name']}: selects no pod")
    return problems


CASES = {
    "default": {},
    "domain": {"domain": "example.com", "caddy": {"email": "ops@example.com"}},
    "bunny": {
        "domain": "example.com",
        "api": {"cdn": "bunny", "bunny": {"logForwardHost": "logs.example.com"}},
        "secrets": {"bunnyApiKey": "k" * 36, "jwtSecret": "j" * 40},
        "ingest": {
            "replicas": 3,
            "proxyProtocol": True,
            "allow": ["192.0.2.0/24", "2001:db8::/32"],
            "syslog": {"type": "NodePort", "nodePort": 30514},
        },
    },
    "postgres": {
        "api": {"replicas": 2, "databaseUrl": "postgres://u:p@pg:5432/ecstatic"},
        "query": {"replicas": 3},
        "clickhouse": {"enabled": False, "externalUrl": "http://ch.example:8123"},
        "caddy": {"enabled": False},
    },
    "existing-secret": {"secrets": {"existingSecret": "mine"}},
    "cluster-ip": {
        "caddy": {"serviceType": "ClusterIP"},
        "ingest": {"syslog": {"type": "ClusterIP"}},
    },
}

MUST_FAIL = {
    "sqlite-replicas": {"api": {"replicas": 2}},
    "bunny-without-host": {"api": {"cdn": "bunny"}},
    "external-ch-without-url": {"clickhouse": {"enabled": False}},
}


def render_case(over):
    values = merge(yaml.safe_load((CHART / "values.yaml").read_text()), over)
    out = Renderer(values).render_all()
    docs = []
    for name, text in out.items():
        if name == "NOTES.txt":
            continue
        for d in yaml.safe_load_all(text):
            if d is not None:
                docs.append(d)
    return out, docs


def schema_problems(docs, version):
    """Strict validation against Kubernetes' OpenAPI schemas, where the
    `kubernetes-validate` package is installed; None when it is not."""
    try:
        import kubernetes_validate
    except ImportError:
        return None
    problems = []
    for d in docs:
        try:
            kubernetes_validate.validate(d, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            problems.append(f"{d['kind']}/{d['metadata']['name']}: {e.message} at {e.path}")
    return problems


SCHEMA_VERSIONS = ("1.30.0", "1.34.0")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--print":
        out, _ = render_case(CASES[sys.argv[2]])
        for name, text in out.items():
            if text.strip():
                print(f"---\n# Source: ecstatic/templates/{name}\n{text.strip()}")
        return 0
    yaml.safe_load((CHART / "Chart.yaml").read_text())
    failed = 0
    for name, over in CASES.items():
        _, docs = render_case(over)
        problems = check(docs)
        for version in SCHEMA_VERSIONS:
            schema = schema_problems(docs, version)
            if schema is None:
                if name == "default":
                    print("kubernetes-validate is not installed: no schema check")
                break
            problems += [f"schema {version}: {p}" for p in schema]
        kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)
        print(f"{name}: {len(docs)} objects, {len(problems)} problems")
        for p in problems:
            print(f"  {p}")
        failed += bool(problems)
        if name == "default":
            print("  " + ", ".join(kinds))
    for name, over in MUST_FAIL.items():
        try:
            render_case(over)
            print(f"{name}: rendered, but should have been refused")
            failed += 1
        except RenderError as e:
            print(f"{name}: refused as it should be ({e})")
    print(f"{len(CASES) + len(MUST_FAIL) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
