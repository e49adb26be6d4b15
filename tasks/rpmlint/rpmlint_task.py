"""rpmlint task: run rpmlint on a Koji build's RPMs and report TAP13.

run() is called by taskotron's python directive; it can also be run by
hand: python3 rpmlint_task.py NVR ARTIFACTSDIR RPM... [--rpmlintrc FILE]
"""
import json
import os
import re
import subprocess
import sys

CHECKNAME = "rpmlint"
SUMMARY = re.compile(r"(\d+) packages? and (\d+) specfiles? checked; (\d+) errors?, (\d+) warnings?")
FINDING = re.compile(r"^\S+: [EW]: ")
MAX_DETAIL_LINES = 200
HERE = os.path.dirname(os.path.abspath(__file__))


def q(value):
    """A YAML scalar: JSON strings are valid YAML double-quoted strings."""
    return json.dumps(value)


def tap(results):
    out = ["TAP version 13", "1..%d" % len(results)]
    for n, r in enumerate(results, 1):
        ok = "ok" if r["outcome"] in ("PASSED", "INFO") else "not ok"
        out.append("%s %d - %s for Koji build %s" % (ok, n, CHECKNAME, r["item"]))
        out.append("  ---")
        for key in ("item", "type", "checkname", "outcome", "note", "arch", "artifact"):
            if key in r:
                out.append("  %s: %s" % (key, q(r[key])))
        if r.get("output"):
            out.append("  details:")
            out.append("    output: |-")
            out.extend("      " + line for line in r["output"])
        out.append("  ...")
    return "\n".join(out) + "\n"


def arch_of(path):
    # <nvra>.rpm: the arch is the last dot-separated part before .rpm.
    return os.path.basename(path)[: -len(".rpm")].rsplit(".", 1)[-1]


def run(koji_build, rpms=None, rpmlintrc=None, artifactsdir=".", **_):
    rpms = sorted(rpms or [])
    result = {"item": koji_build, "type": "koji_build", "checkname": CHECKNAME}
    if not rpms:
        result.update(outcome="NEEDS_INSPECTION", note="no RPMs to check")
        return tap([result])
    cmd = ["rpmlint", "-c", os.path.join(HERE, "fedora.toml")]
    for rc in rpmlintrc or []:
        cmd += ["-r", rc]
    cmd += rpms
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    log = proc.stdout
    m = SUMMARY.search(log)
    # rpmlint exits 0 (clean) or 64 (errors found); anything else, or no
    # summary, means rpmlint itself failed: that is not the package's fault.
    if proc.returncode not in (0, 64, 66) or not m:
        raise RuntimeError("rpmlint failed (exit %d): %s" % (proc.returncode, log.strip()[-500:]))
    errors, warnings = int(m.group(3)), int(m.group(4))
    os.makedirs(artifactsdir, exist_ok=True)
    # The NVR comes from a bus message: keep it to one harmless file name.
    artifact = re.sub(r"[^A-Za-z0-9._+~^-]", "_", koji_build).lstrip(".") + ".log"
    with open(os.path.join(artifactsdir, artifact), "w") as f:
        f.write("$ " + " ".join(cmd) + "\n" + log)
    findings = [line for line in log.splitlines() if FINDING.match(line)]
    if len(findings) > MAX_DETAIL_LINES:
        findings = findings[:MAX_DETAIL_LINES] + ["… %d more in %s" % (len(findings) - MAX_DETAIL_LINES, artifact)]
    result.update(
        outcome="FAILED" if errors else "PASSED",
        note="%d errors, %d warnings" % (errors, warnings),
        arch=sorted({arch_of(p) for p in rpms}),
        artifact=artifact,
        output=findings,
    )
    return tap([result])


if __name__ == "__main__":
    args = sys.argv[1:]
    rcs = []
    while "--rpmlintrc" in args:
        i = args.index("--rpmlintrc")
        rcs.append(args[i + 1])
        del args[i : i + 2]
    if len(args) < 3:
        sys.exit("usage: rpmlint_task.py NVR ARTIFACTSDIR RPM... [--rpmlintrc FILE]")
    sys.stdout.write(run(args[0], args[2:], rcs, args[1]))
