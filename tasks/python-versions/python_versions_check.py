"""python-versions task: the checks of Fedora's python-versions task that
can be made from the build alone.

Each check reads the build's RPMs (headers with rpm -qp, payloads with
rpm2cpio | cpio) and, where it needs them, the build logs Koji kept
(build.log.<arch>). run() is called by taskotron's python directive and
returns ResultYAML: one result per check plus the overall one. By hand:
python3 python_versions_check.py NVR ARTIFACTSDIR FILE...
where each FILE is an RPM (binary or source) or a build.log[.<arch>].
"""
import json
import os
import re
import subprocess
import sys
import tempfile

CHECKNAME = "python-versions"
CHECKS = ("two_three", "naming_scheme", "requires_naming_scheme", "executables",
          "unversioned_shebangs", "python_usage")
WORST = ("PASSED", "INFO", "FAILED")

# Where the Fedora guidelines explain each check (the original task's links).
INFO_URLS = {
    "two_three": "https://python-rpm-porting.readthedocs.io/en/latest/applications.html"
                 "#are-shebangs-dragging-you-down-to-python-2",
    "naming_scheme": "https://python-rpm-porting.readthedocs.io/en/latest/naming-scheme.html",
    "requires_naming_scheme": "https://fedoraproject.org/wiki/Packaging:Python#Dependencies",
    "executables": "https://fedoraproject.org/wiki/Packaging:Python#Executables_in_.2Fusr.2Fbin",
    "unversioned_shebangs": "https://fedoraproject.org/wiki/Packaging:Python#Multiple_Python_Runtimes",
    "python_usage": "https://fedoraproject.org/wiki/Changes/Move_usr_bin_python_into_separate_package",
}


class CheckError(Exception):
    """An input the checks cannot read; its text is one line for the log."""


class Package:
    """One RPM as the checks see it: its header's name, requirements and
    files, and (binary RPMs) the Python majors it requires."""

    def __init__(self, path):
        self.path = path
        self.filename = os.path.basename(path)
        self.is_srpm = self.filename.endswith(".src.rpm")
        # <name>-<version>-<release>.<arch>.rpm
        self.arch = self.filename[:-len(".rpm")].rsplit(".", 1)[-1]
        self.name, self.nvr, self.requires, self.files = read_header(path)
        self.majors = {} if self.is_srpm else python_majors(self.requires)

    @property
    def require_names(self):
        return [name for name, _ in self.requires]


# One rpm call per RPM; each line starts with what it holds. The array
# parts print nothing when the RPM has no requirement or no file.
HEADER_QF = "N\t%{NAME}\nV\t%{NVR}\n[R\t%{REQUIRENAME}\t%{REQUIREVERSION}\n][F\t%{FILENAMES}\n]"


def read_header(path):
    try:
        out = subprocess.run(["rpm", "-qp", "--nosignature", "--nodigest", "--qf", HEADER_QF, path],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    except OSError as err:
        raise CheckError("cannot run rpm: %s" % err)
    if out.returncode != 0:
        raise CheckError("rpm cannot read %s: %s" % (path, first_line(out.stderr)))
    name = nvr = ""
    requires, files = [], []
    for line in out.stdout.decode("utf-8", "replace").splitlines():
        kind, _, rest = line.partition("\t")
        if kind == "N":
            name = rest
        elif kind == "V":
            nvr = rest
        elif kind == "R":
            req, _, version = rest.partition("\t")
            requires.append((req, version))
        elif kind == "F":
            files.append(rest)
    if not name:
        raise CheckError("rpm gave no package name for %s" % path)
    return name, nvr, requires, files


def first_line(raw):
    text = raw.decode("utf-8", "replace").strip()
    return text.splitlines()[0] if text else "no error text"


# A requirement (name) that means Python 2 or Python 3.
PY_NAME = re.compile(r"^(?:python(?P<n>[23])(?:\.\d+)?(?:dist\(.*\)|[-.(].*)?|/usr/bin/python(?P<b>[23])(?:\.\d+)?|libpython(?P<l>[23])\.\d+.*\.so.*)$")


def python_majors(requires):
    """The Python majors ("2", "3") a list of (name, version) requires, each
    with the first requirement that pulls it in."""
    majors = {}
    for name, version in requires:
        if name == "python(abi)" and version[:1] in ("2", "3"):
            majors.setdefault(version[:1], "python(abi) = " + version)
            continue
        m = PY_NAME.match(name)
        if m:
            majors.setdefault(m.group("n") or m.group("b") or m.group("l"), name)
    return majors


def unversioned_python_name(name):
    """Whether a package name uses python without a version: python,
    python-foo, foo-python, foo-python-bar. Paths and rich or virtual
    dependencies are not package names."""
    if name.startswith(("/", "(", "python2", "python3")):
        return False
    return name == "python" or name.startswith("python-") or name.endswith("-python") or "-python-" in name


def with_python2(name):
    """The Python 2 name for an unversioned one: python-foo -> python2-foo."""
    if name == "python":
        return "python2"
    if name.startswith("python-"):
        return "python2-" + name[len("python-"):]
    if "-python-" in name:
        return name.replace("-python-", "-python2-", 1)
    return name + "2"  # foo-python


class Result:
    def __init__(self, check, outcome, note, found):
        self.check, self.outcome, self.note, self.found = check, outcome, note, found


# --- two_three ------------------------------------------------------------

def check_two_three(binaries):
    found = []
    both = []
    for p in binaries:
        if not p.majors:
            found.append("%s: requires no Python" % p.filename)
            continue
        found.append("%s: requires Python %s" % (p.filename, " and ".join(sorted(p.majors))))
        for major in sorted(p.majors):
            found.append("  * Python %s: %s" % (major, p.majors[major]))
        if set(p.majors) == {"2", "3"}:
            both.append(p.filename)
    if not binaries:
        return Result("two_three", "PASSED", "no binary RPMs", found)
    if both:
        found += ["", "An RPM that requires both Pythons drags Python 2 in wherever it is installed.",
                  "Require one Python per RPM (often an unversioned shebang is what drags the other in)."]
        return Result("two_three", "FAILED", "requires both Python 2 and Python 3: " + ", ".join(both), found)
    return Result("two_three", "PASSED", "no RPM requires both Python 2 and Python 3", found)


# --- naming_scheme --------------------------------------------------------

def names_for(major, binaries):
    return {p.name for p in binaries if major in p.majors}


def check_naming_scheme(binaries):
    """Every RPM that requires Python 2 is named python2-foo (or foo-python2),
    not python-foo, and not plain foo beside a python3-foo."""
    found = []
    bad = []
    py2_names, py3_names = names_for("2", binaries), names_for("3", binaries)
    for p in binaries:
        if "2" not in p.majors:
            continue
        if unversioned_python_name(p.name):
            why = "no Python version in the name: name it %s" % with_python2(p.name)
        elif ("python" not in p.name
              and ("python3-" + p.name in py3_names or p.name + "-python3" in py3_names)
              and not ("python2-" + p.name in py2_names or p.name + "-python2" in py2_names)):
            why = "python3-%s exists: name this one python2-%s" % (p.name, p.name)
        else:
            found.append("%s: requires Python 2, named by the scheme" % p.nvr)
            continue
        found.append("%s: requires Python 2, %s" % (p.nvr, why))
        bad.append("%s (%s)" % (p.nvr, why))
    if bad:
        found += ["", "An RPM for one Python version is named python2-<name> or python3-<name>."]
        return Result("naming_scheme", "FAILED", "Python 2 RPMs misnamed: " + ", ".join(bad), found)
    if not py2_names:
        return Result("naming_scheme", "PASSED", "no RPM requires Python 2", found)
    return Result("naming_scheme", "PASSED", "every Python 2 RPM is named by the scheme", found)


# --- requires_naming_scheme -----------------------------------------------

# Names Fedora ships without a Python version on purpose (macros, wheels,
# shared data), which no python2-/python3- name replaces.
DELIBERATELY_UNVERSIONED = {
    "python-rpm-macros", "python-srpm-macros", "python-qt5-rpm-macros", "python-sphinx-locale",
    "python-multilib-conf", "python-pip-wheel", "python-setuptools-wheel", "python-wheel-wheel",
    "python-jupyter-filesystem", "python-typeshed", "texlive-python",
    # /usr/bin/python itself: python_usage reports it.
    "python-unversioned-command",
}


def check_requires_naming_scheme(packages):
    """No (Build)Requires names a package python-foo: python2-foo or
    python3-foo says which Python it means. The build's own RPMs (a
    python-foo-common shared by both Pythons) are exempt."""
    own = {p.name for p in packages}
    found = ["RPMs checked: %s" % (", ".join(p.filename for p in packages) or "none")]
    bad = []
    for p in packages:
        kind = "BuildRequires" if p.is_srpm else "Requires"
        names = sorted({n for n in p.require_names
                        if unversioned_python_name(n) and n not in own and n not in DELIBERATELY_UNVERSIONED})
        if names:
            found.append("%s %s: %s" % (p.nvr, kind, ", ".join(names)))
            bad.append("%s %s %s" % (p.nvr, kind, ", ".join(names)))
    if not any(p.is_srpm for p in packages):
        found.append("(no source RPM: BuildRequires not checked)")
    if bad:
        found += ["", "Name each Python requirement with its version: python3-foo (or python2-foo), not python-foo."]
        return Result("requires_naming_scheme", "FAILED", "unversioned python- requirements: " + "; ".join(bad), found)
    return Result("requires_naming_scheme", "PASSED", "no requirement uses an unversioned python- name", found)


# --- executables ----------------------------------------------------------

def executables_of(p):
    return sorted(f for f in p.files if f.startswith(("/usr/bin/", "/usr/sbin/")))


def check_executables(binaries):
    """When a package is built for both Pythons, its commands are not only
    in the Python 2 RPMs."""
    py2 = [p for p in binaries if "2" in p.majors]
    py3 = [p for p in binaries if "3" in p.majors]
    found = ["Python 2 RPMs: %s" % (", ".join(p.nvr for p in py2) or "none"),
             "Python 3 RPMs: %s" % (", ".join(p.nvr for p in py3) or "none")]
    for p in py2 + py3:
        exe = executables_of(p)
        if exe:
            found.append("%s: %s" % (p.nvr, ", ".join(exe)))
    if not py2 or not py3:
        return Result("executables", "PASSED", "not built for both Python 2 and Python 3: nothing to compare", found)
    if len(py2) > len(py3):
        # As the original: a package not fully ported yet is not judged here.
        return Result("executables", "PASSED", "more Python 2 RPMs than Python 3 ones: not compared", found)
    py2_exe = {p.nvr: executables_of(p) for p in py2 if executables_of(p)}
    if py2_exe and not any(executables_of(p) for p in py3):
        found += ["", "These commands exist only for Python 2. If they do the same whatever the Python,",
                  "ship them from the Python 3 RPM; if not, add Python 3 commands beside them."]
        listed = ", ".join("%s (%s)" % (nvr, ", ".join(exe)) for nvr, exe in sorted(py2_exe.items()))
        return Result("executables", "FAILED", "executables only in Python 2 RPMs: " + listed, found)
    if not py2_exe:
        return Result("executables", "PASSED", "no Python 2 RPM ships executables", found)
    return Result("executables", "PASSED", "the Python 3 RPMs ship executables too", found)


# --- unversioned_shebangs -------------------------------------------------

# "#!/usr/bin/python" or "#!/usr/bin/env python", with no 2 or 3: which
# Python runs it depends on the system.
UNVERSIONED = re.compile(rb"^#!\s*(?:/usr/bin/env\s+)?(?:/usr/bin/)?python(?:\s|$)")
# Fedora's brp-mangle-shebangs rewrote such a shebang at build time and
# said so in build.log.
MANGLED = b"WARNING: mangling shebang in"
MANGLED_FILE = re.compile(rb"mangling shebang in (\S+)")


def unversioned_shebangs(path):
    """Files in the RPM's payload whose shebang names no Python version."""
    found = []
    with tempfile.TemporaryDirectory() as tmp:
        # --no-absolute-filenames keeps every file below tmp whatever the
        # archive says.
        try:
            cpio = subprocess.Popen(["cpio", "-idm", "--quiet", "--no-absolute-filenames"], cwd=tmp,
                                    stdin=subprocess.PIPE, stderr=subprocess.PIPE)
            conv = subprocess.run(["rpm2cpio", path], stdout=cpio.stdin, stderr=subprocess.PIPE, check=False)
        except OSError as err:
            raise CheckError("cannot unpack %s: %s" % (path, err))
        cpio.stdin.close()
        if cpio.wait() != 0 or conv.returncode != 0:
            raise CheckError("cannot unpack %s: %s" % (path, first_line(conv.stderr + cpio.stderr.read())))
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


def log_arch(path):
    name = os.path.basename(path)
    return name[len("build.log."):] if name.startswith("build.log.") else name


def grep_log(path, needle):
    """The lines of a build log that hold needle. Logs can be large and are
    not always UTF-8: read them as bytes, a line at a time."""
    hits = []
    try:
        with open(path, "rb") as f:
            for line in f:
                if needle in line:
                    hits.append(line.rstrip(b"\r\n"))
    except OSError as err:
        raise CheckError("cannot read build log %s: %s" % (path, err.strerror or err))
    return hits


def check_unversioned_shebangs(binaries, logs):
    found = []
    shebangs = []
    for p in binaries:
        for f in unversioned_shebangs(p.path):
            found.append("%s: %s has an unversioned python shebang" % (p.filename, f))
            shebangs.append("%s (%s)" % (f, p.filename))
    mangled = {}
    for path in logs:
        for line in grep_log(path, MANGLED):
            found.append("build.log of %s: %s" % (log_arch(path), line.decode("utf-8", "replace")))
            m = MANGLED_FILE.search(line)
            mangled.setdefault(log_arch(path), []).append(m.group(1).decode("utf-8", "replace") if m else "?")
    found.append("payloads read: %s" % (", ".join(p.filename for p in binaries) or "none"))
    found.append("build logs read: %s" % (", ".join(sorted(log_arch(p) for p in logs)) or "none"))
    notes = []
    if shebangs:
        notes.append("unversioned python shebang in " + ", ".join(shebangs))
    if mangled:
        notes.append("unversioned python shebangs mangled during the build on " + ", ".join(
            "%s (%s)" % (arch, ", ".join(sorted(set(files)))) for arch, files in sorted(mangled.items())))
    if notes:
        found += ["", "Use #!/usr/bin/python3 (or #!/usr/bin/python2) in every script, in the sources",
                  "or in %prep; do not rely on the build to rewrite them."]
        return Result("unversioned_shebangs", "FAILED", "; ".join(notes), found)
    return Result("unversioned_shebangs", "PASSED", "no unversioned python shebangs", found)


# --- python_usage ---------------------------------------------------------

PYTHON_COMMAND = ("/usr/bin/python", "python-unversioned-command")
# Fedora's python2 printed this when a build ran it as /usr/bin/python.
DEPRECATION = b"DEPRECATION WARNING: python2 invoked with /usr/bin/python"


def check_python_usage(packages, logs, missing_logs):
    """/usr/bin/python is neither required by an RPM (or the build) nor run
    during the build."""
    found = []
    required = []
    for p in packages:
        names = [n for n in p.require_names if n in PYTHON_COMMAND]
        if names:
            kind = "BuildRequires" if p.is_srpm else "Requires"
            found.append("%s %s: %s" % (p.filename, kind, ", ".join(names)))
            required.append(p.filename)
    ran = []
    for path in logs:
        hits = grep_log(path, DEPRECATION)
        if hits:
            ran.append(log_arch(path))
            found.append("build.log of %s: %s" % (log_arch(path), hits[0].decode("utf-8", "replace")))
    checked = sorted(log_arch(p) for p in logs)
    found.append("build logs read: %s" % (", ".join(checked) or "none"))
    if missing_logs:
        found.append("build logs Koji did not give: %s" % ", ".join(sorted(missing_logs)))
    notes = []
    if required:
        notes.append("/usr/bin/python required by " + ", ".join(required))
    if ran:
        notes.append("/usr/bin/python run during the build on " + ", ".join(sorted(ran)))
    if notes:
        found += ["", "Use /usr/bin/python3 (or /usr/bin/python2) explicitly, in Requires, BuildRequires",
                  "and in the build: /usr/bin/python is going away or switching to Python 3."]
        return Result("python_usage", "FAILED", "; ".join(notes), found)
    if missing_logs or not logs:
        missing = ", ".join(sorted(missing_logs)) if missing_logs else "any arch"
        return Result("python_usage", "INFO",
                      "no RPM requires /usr/bin/python; no build log for %s, so the build itself was not checked" % missing,
                      found)
    return Result("python_usage", "PASSED", "/usr/bin/python neither required nor run during the build", found)


# --- results --------------------------------------------------------------

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


def section(koji_build, r):
    text = "== %s.%s for %s: %s\n%s\n\n" % (CHECKNAME, r.check, koji_build, r.outcome, r.note)
    text += "\n".join(r.found) + "\n" if r.found else ""
    if r.outcome == "FAILED":
        text += "More: %s\n" % INFO_URLS[r.check]
    return text + "\n"


def split_inputs(paths):
    rpms, logs = [], []
    for path in paths:
        name = os.path.basename(path)
        if name.endswith(".rpm"):
            rpms.append(path)
        elif name == "build.log" or name.startswith("build.log."):
            logs.append(path)
        else:
            raise CheckError("%s is neither an RPM nor a build.log" % path)
    return rpms, logs


def check_all(koji_build, rpms, logs, log_errors, artifactsdir):
    packages = [Package(p) for p in sorted(rpms)]
    binaries = [p for p in packages if not p.is_srpm]
    results = [
        check_two_three(binaries),
        check_naming_scheme(binaries),
        check_requires_naming_scheme(packages),
        check_executables(binaries),
        check_unversioned_shebangs(binaries, logs),
        check_python_usage(packages, logs, log_errors),
    ]
    os.makedirs(artifactsdir, exist_ok=True)
    arch = sorted({p.arch for p in packages})
    base = {"item": koji_build, "type": "koji_build"}
    if arch:
        base["arch"] = arch
    out = []
    sections = []
    for r in results:
        artifact = "%s.%s.log" % (CHECKNAME, r.check)
        text = section(koji_build, r)
        sections.append(text)
        with open(os.path.join(artifactsdir, artifact), "w") as f:
            f.write(text)
        out.append(dict(base, checkname="%s.%s" % (CHECKNAME, r.check), outcome=r.outcome, note=r.note,
                        artifact=artifact))
    worst = max((r.outcome for r in results), key=WORST.index)
    failed = [r.check for r in results if r.outcome == "FAILED"]
    partial = [r.check for r in results if r.outcome == "INFO"]
    if failed:
        note = "failed: " + ", ".join(failed)
    elif partial:
        note = "no problems found, but not fully checked: " + ", ".join(partial)
    else:
        note = "all %d checks passed" % len(results)
    with open(os.path.join(artifactsdir, "output.log"), "w") as f:
        f.write("%s for %s: %s (%s)\n\n" % (CHECKNAME, koji_build, worst, note))
        f.write("".join(sections))
    overall = dict(base, checkname=CHECKNAME, outcome=worst, note=note, artifact="output.log")
    return result_yaml([overall] + out)


def run(koji_build, rpms=None, logs=None, log_errors=None, artifactsdir=".", **_):
    """The python directive's callable. rpms: the build's RPMs (the source
    RPM too, for BuildRequires); logs: its build.log.<arch> files; log_errors:
    the arches whose build log Koji did not give."""
    try:
        rpm_paths, more_logs = split_inputs(rpms or [])
        return check_all(koji_build, rpm_paths, sorted(list(logs or []) + more_logs), list(log_errors or []),
                         artifactsdir)
    except CheckError as err:
        # One line on stderr, which the python directive puts in its error.
        sys.stderr.write("python-versions: %s\n" % err)
        raise SystemExit(2)


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit("usage: python_versions_check.py NVR ARTIFACTSDIR FILE... (RPMs and build.log.<arch> files)")
    sys.stdout.write(run(sys.argv[1], sys.argv[3:], artifactsdir=sys.argv[2]))
