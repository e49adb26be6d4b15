"""upgradepath task: a new build must not break the upgrade path.

For every build under test (the latest builds of a Koji tag, or the builds
of a Bodhi update), the same package in each lower Fedora release must not
be newer, and in each higher release must not be older. Versions are
compared by rpm itself (rpm.labelCompare from python3-rpm, or the rpm
tool's rpm.vercmp: epoch, then version, then release, rpm's segment rules).

run() gets the koji directive's latest_by_release data and returns TAP13.
By hand: python3 upgradepath.py ITEM ITEM_TYPE ARTIFACTSDIR < data.json
"""
import json
import os
import re
import subprocess
import sys

try:
    import rpm  # python3-rpm
except ImportError:
    rpm = None

CHECKNAME = "upgradepath"


def evr(build):
    epoch = build.get("epoch")
    return (None if epoch in (None, "") else str(epoch), build["version"], build["release"])


def label(build):
    e, v, r = evr(build)
    return "%s-%s%s-%s" % (build["name"], "" if e in (None, "0") else e + ":", v, r)


def label_compare(a, b):
    """rpm's own comparison of two (epoch, version, release) triples."""
    if rpm is not None:
        return rpm.labelCompare(a, b)
    # Without the Python bindings ask the rpm tool; the values travel in the
    # environment, never inside the Lua code.
    def s(t):
        return "%s:%s-%s" % (t[0] or "0", t[1], t[2])
    env = dict(os.environ, UPGRADEPATH_A=s(a), UPGRADEPATH_B=s(b))
    out = subprocess.run(
        ["rpm", "--eval", '%{lua: print(rpm.vercmp(os.getenv("UPGRADEPATH_A"), os.getenv("UPGRADEPATH_B")))}'],
        stdout=subprocess.PIPE, text=True, env=env, check=True,
    ).stdout.strip()
    return int(out)


def release_of(build, data):
    if data.get("release"):
        return int(data["release"])
    m = re.search(r"\.fc(\d+)", build["release"])
    return int(m.group(1)) if m else None


def check(build, data):
    """Returns (ok, log lines) for one build."""
    mine = release_of(build, data)
    lines = []
    ok = True
    for tag in sorted(data.get("releases", {}), key=lambda t: int(t[1:])):
        other_rel = int(tag[1:])
        other = data["releases"][tag].get(build["name"])
        if other is None:
            lines.append("[ OK ] %s: not in %s" % (label(build), tag))
            continue
        cmp = label_compare(evr(build), evr(other))
        if other_rel < mine and cmp < 0:
            ok = False
            lines.append("[FAIL] %s is older than %s in lower release %s" % (label(build), label(other), tag))
        elif other_rel > mine and cmp > 0:
            ok = False
            lines.append("[FAIL] %s is newer than %s in higher release %s" % (label(build), label(other), tag))
        else:
            lines.append("[ OK ] %s against %s in %s" % (label(build), label(other), tag))
    return ok, lines


def q(value):
    return json.dumps(value)


def tap(results):
    out = ["TAP version 13", "1..%d" % len(results)]
    for n, r in enumerate(results, 1):
        ok = "ok" if r["outcome"] == "PASSED" else "not ok"
        out.append("%s %d - %s for %s" % (ok, n, CHECKNAME, r["item"]))
        out.append("  ---")
        for key in ("item", "type", "checkname", "outcome", "note", "artifact"):
            out.append("  %s: %s" % (key, q(r[key])))
        out.append("  details:")
        out.append("    output: |-")
        out.extend("      " + line for line in r["output"])
        out.append("  ...")
    return "\n".join(out) + "\n"


def safe_name(item):
    return re.sub(r"[^A-Za-z0-9._+-]", "_", item)


def run(data, item, item_type, artifactsdir=".", **_):
    os.makedirs(artifactsdir, exist_ok=True)
    checked = [(b, *check(b, data)) for b in data.get("builds", [])]
    results = []
    if item_type == "bodhi_update":
        # One verdict for the update, as Bodhi gated on it.
        artifact = safe_name(item) + ".log"
        lines = [line for _, _, ls in checked for line in ls]
        bad = [label(b) for b, ok, _ in checked if not ok]
        results.append({
            "item": item, "type": "bodhi_update", "checkname": CHECKNAME, "artifact": artifact,
            "outcome": "FAILED" if bad else "PASSED", "output": lines,
            "note": ("broken upgrade path: " + ", ".join(bad)) if bad else "%d builds keep the upgrade path" % len(checked),
        })
        with open(os.path.join(artifactsdir, artifact), "w") as f:
            f.write("\n".join(lines) + "\n")
    else:
        for b, ok, lines in checked:
            artifact = safe_name(b["nvr"]) + ".log"
            with open(os.path.join(artifactsdir, artifact), "w") as f:
                f.write("\n".join(lines) + "\n")
            results.append({
                "item": b["nvr"], "type": "koji_build", "checkname": CHECKNAME, "artifact": artifact,
                "outcome": "PASSED" if ok else "FAILED", "output": lines,
                "note": "keeps the upgrade path" if ok else "; ".join(l[7:] for l in lines if l.startswith("[FAIL]")),
            })
    if not results:
        return "TAP version 13\n1..0 # SKIP no builds in %s\n" % item
    return tap(results)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: upgradepath.py ITEM ITEM_TYPE ARTIFACTSDIR < data.json")
    sys.stdout.write(run(json.load(sys.stdin), sys.argv[1], sys.argv[2], sys.argv[3]))
