#!/usr/bin/env python3
"""Checks docker/*.Dockerfile against the binaries they package, without building an image.

    python3 tests/k8s/dockerfile_test.py REPO_ROOT BUILD_DIR

Nothing here can build images (no Docker engine), so what can be checked offline is:

- each binary (lethed, lethe-agent, lethectl) has docker/<binary>.Dockerfile, with a build
  stage and a run stage, every stage FROM debian:12-slim (Debian 12, as the build machines);
- the build stage builds that binary's target, and the run stage copies it from there;
- the run stage ends as a numeric, non-root USER (UID and GID above 0), the UID k8s/ runs
  the containers as (10001);
- the build stage installs every package tests/scripts/deps.sh installs to build, all but
  those only the tests, the demo or the scripts use (TEST_ONLY): CMake's configure step asks
  for every dependency of the tree, so one missing there stops the image's build;
- every shared library the binary as built here needs (its ELF NEEDED entries, objdump -p,
  resolved by ldd and mapped to their Debian packages by dpkg -S) is installed by the run
  stage, directly or as a dependency of what it installs (dpkg-query, this machine being
  Debian 12 too), or is part of the debian:12-slim image itself. A library added to a binary without its package in the
  Dockerfile fails here, naming both.

Exits non-zero naming every problem.
"""
import os
import re
import subprocess
import sys

BINARIES = {
    "lethed": "controlplane/lethed",
    "lethe-agent": "agents/lethe-agent",
    "lethectl": "cli/lethectl",
}
# Packages of tests/scripts/deps.sh that neither CMake nor the compiler needs: the tests'
# PostgreSQL, kcat and the verifier's Python, and the tools the scripts call.
TEST_ONLY = {"postgresql-15", "kcat", "openssl", "git", "curl", "ca-certificates", "python3-protobuf",
             "python3-cryptography", "python3-yaml", "nodejs", "npm"}
BASE_IMAGE = "debian:12-slim"
RUN_AS = 10001
# Packages of debian:12-slim itself (essential and required, what apt and dpkg need) that
# binaries link: nothing needs installing for these.
IN_BASE_IMAGE = {"libc6", "libstdc++6", "libgcc-s1", "zlib1g", "libzstd1", "liblzma5", "libbz2-1.0",
                 "libsystemd0", "libcap2", "libgcrypt20", "libgpg-error0", "liblz4-1", "libselinux1",
                 "libpcre2-8-0", "libcrypt1", "libgmp10"}


def stages(text):
    """[(from_line, [instructions])] with continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            out.append((line, []))
        elif out:
            out[-1][1].append(line)
    return out


def installed_packages(instructions):
    pkgs = set()
    for ins in instructions:
        if not ins.upper().startswith("RUN "):
            continue
        for m in re.finditer(r"apt-get install\s+([^&;|]*)", ins):
            pkgs |= {w for w in m.group(1).split() if not w.startswith("-")}
    return pkgs


def deps_packages(root):
    """The packages of tests/scripts/deps.sh's PACKAGES=( ... ) list."""
    text = open(os.path.join(root, "tests", "scripts", "deps.sh")).read()
    m = re.search(r"^PACKAGES=\((.*?)^\)", text, re.M | re.S)
    if not m:
        return None
    return {w for line in m.group(1).splitlines() for w in line.split("#")[0].split()}


def owner(path):
    """The Debian package that installed `path` (its /usr-merged twin tried too), or None."""
    candidates = [path, os.path.realpath(path)]
    for c in list(candidates):
        if c.startswith("/usr/"):
            candidates.append(c[len("/usr"):])
        else:
            candidates.append("/usr" + c)
    for c in candidates:
        res = subprocess.run(["dpkg", "-S", c], capture_output=True, text=True)
        if res.returncode == 0 and ":" in res.stdout:
            return res.stdout.split(":")[0].strip()
    return None


def needed_packages(binary):
    """{package: [libraries]} of the binary's NEEDED entries, resolved as the loader does."""
    dump = subprocess.run(["objdump", "-p", binary], capture_output=True, text=True, check=True).stdout
    needed = re.findall(r"^\s*NEEDED\s+(\S+)$", dump, re.M)
    ldd = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    where = dict(re.findall(r"^\s*(\S+)\s+=>\s+(\S+)", ldd, re.M))
    out = {}
    for lib in needed:
        pkg = owner(where[lib]) if lib in where else None
        out.setdefault(pkg or f"(no package found for {lib})", []).append(lib)
    return out


def closure(packages):
    """The packages and everything they depend on, as installed on this Debian 12 machine."""
    seen, pending = set(), list(packages)
    while pending:
        pkg = pending.pop()
        if pkg in seen:
            continue
        seen.add(pkg)
        res = subprocess.run(["dpkg-query", "-W", "-f=${Depends},${Pre-Depends}", pkg],
                             capture_output=True, text=True)
        if res.returncode != 0:
            continue
        for dep in res.stdout.split(","):
            # "libfoo1 (>= 1.2) | libbar1": every alternative counts as provided
            for alt in dep.split("|"):
                name = alt.strip().split(" ")[0].split(":")[0]
                if name:
                    pending.append(name)
    return seen


def check(root, build, name, rel, wanted):
    """The problems of docker/<name>.Dockerfile; `wanted`: the build packages of deps.sh."""
    problems = []
    path = os.path.join(root, "docker", f"{name}.Dockerfile")
    if not os.path.isfile(path):
        return [f"docker/{name}.Dockerfile: missing"]
    st = stages(open(path).read())
    if len(st) < 2:
        problems.append(f"docker/{name}.Dockerfile: {len(st)} stage(s); a build stage and a run stage are expected")
        return problems
    for from_line, _ in st:
        image = from_line.split()[1]
        if image != BASE_IMAGE:
            problems.append(f"docker/{name}.Dockerfile: {from_line!r}: every stage must be FROM {BASE_IMAGE}")
    build_alias = st[0][0].split()[-1] if " AS " in st[0][0].upper() else None
    build_text = " ".join(st[0][1])
    for pkg in sorted(wanted - installed_packages(st[0][1])):
        problems.append(f"docker/{name}.Dockerfile: the build stage does not install {pkg}, which "
                        "tests/scripts/deps.sh installs to build")
    if not re.search(rf"ninja\b[^&]*\s{re.escape(name)}\b", build_text):
        problems.append(f"docker/{name}.Dockerfile: the build stage does not build target {name}")
    run = st[-1][1]
    if not any(re.match(rf"COPY\s+--from={re.escape(build_alias or '0')}\s+\S*/{re.escape(rel)}\s", i)
               for i in run):
        problems.append(f"docker/{name}.Dockerfile: the run stage does not COPY --from={build_alias} .../{rel}")
    users = [i for i in run if i.upper().startswith("USER ")]
    if not users:
        problems.append(f"docker/{name}.Dockerfile: the run stage sets no USER (it would run as root)")
    else:
        m = re.match(r"USER\s+(\d+):(\d+)$", users[-1])
        if not m or int(m.group(1)) == 0 or int(m.group(2)) == 0:
            problems.append(f"docker/{name}.Dockerfile: {users[-1]!r}: USER must be numeric UID:GID, not root")
        elif int(m.group(1)) != RUN_AS:
            problems.append(f"docker/{name}.Dockerfile: {users[-1]!r}: k8s/ runs the containers as UID {RUN_AS}")
    binary = os.path.join(build, rel)
    if not os.path.isfile(binary):
        problems.append(f"{binary}: not built (build the tree first)")
        return problems
    have = closure(installed_packages(run)) | IN_BASE_IMAGE
    for pkg, libs in sorted(needed_packages(binary).items()):
        if pkg not in have:
            problems.append(f"docker/{name}.Dockerfile: {rel} needs {', '.join(libs)} from {pkg}, "
                            "which the run stage does not install")
    return problems


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    root, build = (os.path.abspath(a) for a in sys.argv[1:])
    packages = deps_packages(root)
    if packages is None:
        print("dockerfile_test.py: FAIL: tests/scripts/deps.sh: no PACKAGES=( ... ) list found", file=sys.stderr)
        return 1
    wanted = packages - TEST_ONLY
    problems = []
    for name, rel in BINARIES.items():
        p = check(root, build, name, rel, wanted)
        print(f"  {'FAIL' if p else 'ok  '} docker/{name}.Dockerfile")
        problems += p
    if problems:
        print(f"dockerfile_test.py: FAIL: {len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    print("dockerfile_test.py: every Dockerfile builds its binary on Debian 12 and runs it as UID 10001 "
          "with every library it links")
    return 0


if __name__ == "__main__":
    sys.exit(main())
