#!/usr/bin/env python3
"""Vendor the user-agent rules and oracle corpora used by `ecstatic-enrich`.

Reads the snapshot in ../shared/data/ua (see its README.md) and writes:

  enrich/rules/   the production rules, embedded in the binary with include_str!:
                  uap-core regexes (YAML -> compact JSON, so the crate needs no
                  YAML parser) and isbot's pattern list;
  testdata/ua/    the oracle corpora read by enrich/tests/, as gzip'd text/JSONL.

Run from the repository root:  python3 scripts/vendor-ua.py [SOURCE_DIR]
Needs PyYAML (`pip install pyyaml`). Output is deterministic (gzip mtime 0), so
re-running on the same snapshot leaves git clean.
"""

import gzip
import json
import os
import shutil
import sys

import yaml

SRC = sys.argv[1] if len(sys.argv) > 1 else os.path.join("..", "shared", "data", "ua")
RULES = os.path.join("enrich", "rules")
TEST = os.path.join("testdata", "ua")


def load_yaml(path):
    with open(os.path.join(SRC, path), encoding="utf-8") as f:
        # CSafeLoader when available: the test files are several MB.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return yaml.load(f, Loader=loader)


def read_lines(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(os.path.join(SRC, path), "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def write_gz(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    with open(path, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as f:
            f.write(data)


def jsonl(rows):
    return [json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in rows]


def copy(src, dst):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copyfile(os.path.join(SRC, src), dst)


def vendor_rules():
    regexes = load_yaml("uap-core/regexes-0.18.0.yaml")
    # Only the UA and OS parsers are run: the device is derived from the OS
    # and a few tokens, and uap's "Spider" device rules flag too many phones
    # (see enrich/src/bots.rs).
    out = {
        "source": "uap-core 0.18.0 regexes.yaml (npm uap-core@0.18.0), Apache-2.0",
        "user_agent_parsers": regexes["user_agent_parsers"],
        "os_parsers": regexes["os_parsers"],
    }
    os.makedirs(RULES, exist_ok=True)
    with open(os.path.join(RULES, "uap-regexes-0.18.0.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    copy("uap-core/LICENSE", os.path.join(RULES, "LICENSE-uap-core"))

    with open(os.path.join(SRC, "isbot/isbot-patterns-5.2.4.json"), encoding="utf-8") as f:
        isbot = json.load(f)
    with open(os.path.join(RULES, "isbot-patterns-5.2.4.json"), "w", encoding="utf-8") as f:
        json.dump(isbot, f, ensure_ascii=False, indent=0)
        f.write("\n")
    copy("isbot/LICENSE", os.path.join(RULES, "LICENSE-isbot"))


def vendor_uap_tests():
    for name, fields in [
        ("tests/test_ua.yaml", ["family", "major", "minor", "patch"]),
        ("tests/test_os.yaml", ["family", "major", "minor", "patch", "patch_minor"]),
    ]:
        cases = load_yaml("uap-core/" + name)["test_cases"]
        rows = [{"ua": c["user_agent_string"], **{k: c.get(k) for k in fields}} for c in cases]
        base = os.path.basename(name).replace(".yaml", ".jsonl.gz")
        write_gz(os.path.join(TEST, "uap-core", base), jsonl(rows))
    # The extra suites that upstream runs too, in one file with their name.
    rows = []
    for name in ["firefox", "opera_mini", "podcasting", "pgts_browser_list"]:
        stem = name if name == "pgts_browser_list" else name + "_user_agent_strings"
        cases = load_yaml("uap-core/test_resources/" + stem + ".yaml")["test_cases"]
        rows += [
            {"suite": name, "ua": c["user_agent_string"], "family": c["family"]} for c in cases
        ]
    cases = load_yaml("uap-core/test_resources/additional_os_tests.yaml")["test_cases"]
    rows_os = [{"suite": "additional_os", "ua": c["user_agent_string"], "family": c["family"]}
               for c in cases]
    write_gz(os.path.join(TEST, "uap-core", "test_resources_ua.jsonl.gz"), jsonl(rows))
    write_gz(os.path.join(TEST, "uap-core", "test_resources_os.jsonl.gz"), jsonl(rows_os))
    copy("uap-core/LICENSE", os.path.join(TEST, "uap-core", "LICENSE"))


def vendor_crawlers():
    path = os.path.join(SRC, "crawler-user-agents/crawler-user-agents.json")
    with open(path, encoding="utf-8") as f:
        entries = json.load(f)
    rows = [{"pattern": e["pattern"], "instances": e.get("instances", [])} for e in entries]
    write_gz(os.path.join(TEST, "crawler-user-agents", "instances.jsonl.gz"), jsonl(rows))
    copy("crawler-user-agents/LICENSE", os.path.join(TEST, "crawler-user-agents", "LICENSE"))

    crawlers = read_lines("crawlerdetect/crawlers.txt")
    write_gz(os.path.join(TEST, "crawlerdetect", "crawlers.txt.gz"), crawlers)
    copy("crawlerdetect/devices.txt.gz", os.path.join(TEST, "crawlerdetect", "devices.txt.gz"))
    copy("crawlerdetect/LICENSE", os.path.join(TEST, "crawlerdetect", "LICENSE"))

    for name in ["crawler_user_agents.txt", "crawler_user_agents_pgts.txt"]:
        write_gz(os.path.join(TEST, "is-crawler", name + ".gz"), read_lines("is-crawler/" + name))
    for name in ["browser_user_agents.txt.gz", "browser_user_agents_extended.txt.gz"]:
        copy("is-crawler/" + name, os.path.join(TEST, "is-crawler", name))
    copy("is-crawler/LICENSE", os.path.join(TEST, "is-crawler", "LICENSE"))

    bots = load_yaml("matomo-device-detector/bots.yml")
    rows = [
        {"ua": b["user_agent"], "name": b["bot"].get("name"), "category": b["bot"].get("category")}
        for b in bots
    ]
    dst = os.path.join(TEST, "matomo-device-detector")
    write_gz(os.path.join(dst, "bots.jsonl.gz"), jsonl(rows))
    copy("matomo-device-detector/LICENSE-LGPL-3", os.path.join(dst, "LICENSE-LGPL-3"))
    copy("matomo-device-detector/LICENSE-GPL-3", os.path.join(dst, "LICENSE-GPL-3"))


def vendor_intoli():
    path = os.path.join(SRC, "intoli-user-agents/user-agents.json.gz")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        entries = json.load(f)
    rows = [
        {"ua": e["userAgent"], "deviceCategory": e["deviceCategory"], "weight": e["weight"]}
        for e in entries
    ]
    write_gz(os.path.join(TEST, "intoli-user-agents", "user-agents.jsonl.gz"), jsonl(rows))
    copy("intoli-user-agents/LICENSE", os.path.join(TEST, "intoli-user-agents", "LICENSE"))


if __name__ == "__main__":
    vendor_rules()
    vendor_uap_tests()
    vendor_crawlers()
    vendor_intoli()
