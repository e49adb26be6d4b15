"""python-versions task: flag RPMs that require both Python 2 and 3, and
scripts with an unversioned python shebang.

The requirements come from each RPM's header (rpm -qp), the shebangs from
its payload (rpm2cpio | cpio). run() is called by taskotron's python
directive and returns ResultYAML; by hand:
python3 python_versions_check.py NVR ARTIFACTSDIR RPM...
"""
import json
import os
import re
import subprocess
import sys
import tempfile

CHECKNAME = "python-versions"
# A requirement (name, version) that means Python 2 or Python 3.
PY_NAME = re.compile(r"^(?:python(?P<n>[23])(?:\.\d+)?(?:dist\(.*\)|[-.(].*)?|/usr/bin/python(?P<b>[23])(?:\.\d+)?|libpython(?P<l>[23])\.\d+.*\.so.*)$")


def python_majors(requires):
    """The Python majors ("2", "3") a list of (name, version) requires."""
    majors = set()
    for name, version in requires:
        if name == "python(abi)" and version[:1] in ("2", "3"):
            majors.add(version[:1])
            continue
        m = PY_NAME.match(name)
        if m:
            majors.add(m.group("n") or m.group("b") or m.group("l"))
    return majors


def header_requires(path):
    out = subprocess.run(
        ["rpm", "-qp", "--nosignature", "--nodigest", "--qf", "[%{REQUIRENAME}\t%{REQUIREVERSION}\n]", path],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=True,
    ).stdout
    return [tuple((line.split("\t") + [""])[:2]) for line in out.splitlines() if line]


# "#!/usr/bin/python" or "#!/usr/bin/env python", with no 2 or 3: which
# Python runs it depends on the system.
UNVERSIONED = re.compile(rb"^#!\s*(?:/usr/bin/env\s+)?(?:/usr/bin/)?python(?:\s|$)")


def unversioned_shebangs(path):
    """Files in the RPM's payload whose shebang names no Python version."""
    found = []
    with tempfile.TemporaryDirectory() as tmp:
        # --no-absolute-filenames keeps every file below tmp whatever the
        # archive says.
        cpio = subprocess.Popen(["cpio", "-idm", "--quiet", "--no-absolute-filenames"], cwd=tmp,
                                stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        subprocess.run(["rpm2cpio", path], stdout=cpio.stdin, check=True)
        cpio.stdin.close()
        if cpio.wait() != 0:
            raise RuntimeError("cpio could not unpack %s: %s" % (path, cpio.stderr.read().decode(errors="replace")))
        for root, _, files in os.walk(tmp):
            for name in files:
                full = os.path.join(root, name)
                if os.path.islink(full) or not os.path.isfile(full):
                    continue
                with open(full, "rb") as f:
                    first = f.readline(256)
                if UNVERSIONED.match(first):
                    found.append("/" + os.path.relpath(full, tmp))
    return sorted(found)


def q(value):
    return json.dumps(value)


def result_yaml(results):
    lines = ["results:"]
    for r in results:
        lines.append("  - item: %s" % q(r["item"]))
        for key in ("type", "checkname", "outcome", "note", "artifact", "arch"):
            if key in r:
                lines.append("    %s: %s" % (key, q(r[key])))
    return "\n".join(lines) + "\n"


def run(koji_build, rpms=None, artifactsdir=".", **_):
    rpms = sorted(p for p in (rpms or []) if not p.endswith(".src.rpm"))
    log = []
    both = []
    shebangs = []
    for path in rpms:
        name = os.path.basename(path)
        majors = python_majors(header_requires(path))
        log.append("%s: requires Python %s" % (name, ", ".join(sorted(majors)) or "none"))
        if majors == {"2", "3"}:
            both.append(name)
        for f in unversioned_shebangs(path):
            log.append("%s: %s has an unversioned python shebang" % (name, f))
            shebangs.append("%s (%s)" % (f, name))
    os.makedirs(artifactsdir, exist_ok=True)
    artifact = "output.log"
    with open(os.path.join(artifactsdir, artifact), "w") as f:
        f.write("\n".join(log) + "\n")
    base = {"item": koji_build, "type": "koji_build", "artifact": artifact}
    if not rpms:
        two_three = dict(base, checkname=CHECKNAME + ".two_three", outcome="PASSED", note="no binary RPMs")
    elif both:
        two_three = dict(base, checkname=CHECKNAME + ".two_three", outcome="FAILED",
                         note="requires both Python 2 and Python 3: " + ", ".join(both))
    else:
        two_three = dict(base, checkname=CHECKNAME + ".two_three", outcome="PASSED",
                         note="no RPM requires both Python 2 and Python 3")
    if shebangs:
        unversioned = dict(base, checkname=CHECKNAME + ".unversioned_shebangs", outcome="FAILED",
                           note="unversioned python shebang in " + ", ".join(shebangs))
    else:
        unversioned = dict(base, checkname=CHECKNAME + ".unversioned_shebangs", outcome="PASSED",
                           note="no unversioned python shebangs")
    subchecks = [two_three, unversioned]
    failed = [r for r in subchecks if r["outcome"] == "FAILED"]
    overall = dict(base, checkname=CHECKNAME, outcome="FAILED" if failed else "PASSED",
                   note="; ".join(r["note"] for r in failed) if failed else "all checks passed")
    return result_yaml([overall] + subchecks)


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit("usage: python_versions_check.py NVR ARTIFACTSDIR RPM...")
    sys.stdout.write(run(sys.argv[1], sys.argv[3:], sys.argv[2]))
