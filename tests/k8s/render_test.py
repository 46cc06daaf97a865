#!/usr/bin/env python3
"""Renders every kustomization under k8s/ with `kubectl kustomize` and checks the output.

    python3 tests/k8s/render_test.py [REPO_ROOT]

Every directory under k8s/ holding a kustomization.yaml that is not a Component is rendered
(the overlays, the example, the bases), offline. In what they render:

- every container of every workload, init containers included, has resource requests and
  limits for cpu and memory, a pinned image (a tag other than `latest`, or a digest), and a
  security context that meets the restricted Pod Security Standard as Lethe applies it:
  runAsNonRoot, numeric non-zero runAsUser and numeric runAsGroup, allowPrivilegeEscalation
  false, readOnlyRootFilesystem true, capabilities dropping ALL (adding at most
  NET_BIND_SERVICE), seccompProfile RuntimeDefault or Localhost, nothing privileged, no host
  namespaces, no hostPath volumes;
- every long-running container (a pod's containers, and init containers with
  restartPolicy: Always, the native sidecars) has a liveness probe and a readiness or
  startup probe; one-shot init containers and the containers of Jobs are exempt;
- lethe-agent appears only as a native sidecar (an init container with restartPolicy:
  Always), every Deployment whose pod template is labelled lethe.dev/domain carries it, and
  k8s/overlays/dev and k8s/examples/domain-growth each render at least one;
- no Secret carries inline data or stringData (Secrets are made by the operator), and no
  ConfigMap holds a PEM private key.

Exits non-zero naming every problem. A missing kubectl, or one whose kustomize is older than
v4 (no Components), is a failure, not a skip.
"""
import json
import os
import re
import shutil
import subprocess
import sys

try:
    import yaml
except ImportError:
    print("render_test.py: FAIL: python3 cannot import yaml (Debian: python3-yaml, which "
          "tests/scripts/deps.sh installs)", file=sys.stderr)
    sys.exit(1)

# Kustomizations that must exist and render a lethe-agent sidecar.
MUST_HAVE_SIDECAR = ["k8s/overlays/dev", "k8s/examples/domain-growth"]
SIDECAR = "lethe-agent"
DOMAIN_LABEL = "lethe.dev/domain"
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController",
             "Job", "CronJob", "Pod"}
ONE_SHOT = {"Job", "CronJob"}
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


def fail_now(message):
    print(f"render_test.py: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def check_kubectl():
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        fail_now("kubectl is not on PATH. This test renders k8s/ with `kubectl kustomize` "
                 "(kubectl 1.24 or later, whose kustomize knows Components). Debian 12 packages "
                 "only kubernetes-client 1.20, whose kustomize is too old: install kubectl from "
                 "the Kubernetes project's own packages (docs/kubernetes.md).")
    try:
        out = subprocess.run([kubectl, "version", "--client", "-o", "json"], capture_output=True,
                             text=True, timeout=60)
        version = json.loads(out.stdout).get("kustomizeVersion", "")
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        fail_now(f"`kubectl version --client -o json` failed: {e}")
    m = re.match(r"v(\d+)\.", version)
    if not m or int(m.group(1)) < 4:
        fail_now(f"{kubectl} bundles kustomize {version or '(unknown)'}; Components need v4 or "
                 "later (kubectl 1.24 or later)")
    return kubectl, version


def kustomizations(root):
    """Directories under k8s/ with a kustomization that is not a Component, sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(os.path.join(root, "k8s")):
        dirnames.sort()
        for name in KUSTOMIZATION_FILES:
            if name in filenames:
                with open(os.path.join(dirpath, name)) as f:
                    doc = yaml.safe_load(f) or {}
                if doc.get("kind") != "Component":
                    found.append(os.path.relpath(dirpath, root))
                break
    return sorted(found)


def render(kubectl, root, rel):
    out = subprocess.run([kubectl, "kustomize", os.path.join(root, rel)], capture_output=True,
                         text=True, timeout=300)
    if out.returncode != 0:
        return None, out.stderr.strip() or f"exit code {out.returncode}"
    return [d for d in yaml.safe_load_all(out.stdout) if d], None


def pod_spec(doc):
    kind, spec = doc.get("kind"), doc.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        return (((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
    return (spec.get("template") or {}).get("spec") or {}


def pod_labels(doc):
    if doc.get("kind") == "Pod":
        return (doc.get("metadata") or {}).get("labels") or {}
    spec = doc.get("spec") or {}
    if doc.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}


def image_pinned(image):
    if not image:
        return False
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return False
    return last.rsplit(":", 1)[1] not in ("", "latest")


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def check_security(pod_sc, c):
    """Problems of container c's effective security context (its own over the pod's)."""
    sc = c.get("securityContext") or {}
    problems = []

    def eff(key):
        return sc[key] if key in sc else pod_sc.get(key)

    if eff("runAsNonRoot") is not True:
        problems.append("runAsNonRoot is not true")
    user = eff("runAsUser")
    if not is_int(user) or user == 0:
        problems.append(f"runAsUser must be a numeric non-root UID (got {user!r})")
    if not is_int(eff("runAsGroup")):
        problems.append(f"runAsGroup must be numeric (got {eff('runAsGroup')!r})")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation is not false")
    if sc.get("privileged") is True:
        problems.append("privileged")
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.append("readOnlyRootFilesystem is not true")
    caps = sc.get("capabilities") or {}
    if "ALL" not in (caps.get("drop") or []):
        problems.append("capabilities.drop lacks ALL")
    added = [a for a in (caps.get("add") or []) if a != "NET_BIND_SERVICE"]
    if added:
        problems.append(f"capabilities.add {added}")
    seccomp = (eff("seccompProfile") or {}).get("type")
    if seccomp not in ("RuntimeDefault", "Localhost"):
        problems.append(f"seccompProfile.type is {seccomp!r}, not RuntimeDefault or Localhost")
    return problems


def check_workload(doc, where):
    """(problems, number of lethe-agent sidecars) of one workload."""
    meta = doc.get("metadata") or {}
    name = f"{doc['kind']} {meta.get('namespace', '-')}/{meta.get('name')}"
    spec = pod_spec(doc)
    pod_sc = spec.get("securityContext") or {}
    problems, sidecars = [], 0

    def bad(what):
        problems.append(f"{where}: {name}: {what}")

    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(host) is True:
            bad(f"{host} is true")
    for v in spec.get("volumes") or []:
        if "hostPath" in v:
            bad(f"volume {v.get('name')} is a hostPath")

    entries = [(c, "init") for c in spec.get("initContainers") or []]
    entries += [(c, "container") for c in spec.get("containers") or []]
    if not spec.get("containers"):
        bad("no containers")
    for c, place in entries:
        cname = c.get("name")
        sidecar = place == "init" and c.get("restartPolicy") == "Always"
        label = f"{'sidecar' if sidecar else place} {cname}"
        if cname == SIDECAR:
            if place == "container":
                bad(f"{SIDECAR} is a regular container; it must be a native sidecar "
                    "(an init container with restartPolicy: Always)")
            elif not sidecar:
                bad(f"init container {SIDECAR} has restartPolicy "
                    f"{c.get('restartPolicy')!r}; it must be Always (a native sidecar)")
            else:
                sidecars += 1
        if not image_pinned(c.get("image")):
            bad(f"{label}: image {c.get('image')!r} is not pinned (a tag other than latest, "
                "or a digest)")
        res = c.get("resources") or {}
        for kind in ("limits", "requests"):
            for r in ("cpu", "memory"):
                if r not in (res.get(kind) or {}):
                    bad(f"{label}: no resources.{kind}.{r}")
        for p in check_security(pod_sc, c):
            bad(f"{label}: securityContext: {p}")
        long_running = (place == "container" and doc["kind"] not in ONE_SHOT) or sidecar
        if long_running:
            if "livenessProbe" not in c:
                bad(f"{label}: no livenessProbe")
            if "readinessProbe" not in c and "startupProbe" not in c:
                bad(f"{label}: neither a readinessProbe nor a startupProbe")

    labels = pod_labels(doc)
    if doc["kind"] == "Deployment" and DOMAIN_LABEL in labels and sidecars == 0:
        bad(f"pod template labelled {DOMAIN_LABEL}={labels[DOMAIN_LABEL]} but no {SIDECAR} "
            "sidecar (is the agent component applied, and the Deployment labelled too?)")
    if sidecars and not labels.get(DOMAIN_LABEL):
        bad(f"{SIDECAR} sidecar in a pod template without the label {DOMAIN_LABEL}, from which "
            "the agent reads its domain")
    return problems, sidecars


def check_render(rel, docs):
    problems, workloads, sidecars = [], 0, 0
    for doc in docs:
        kind = doc.get("kind")
        meta = doc.get("metadata") or {}
        name = f"{kind} {meta.get('namespace', '-')}/{meta.get('name')}"
        if kind == "Secret" and (doc.get("data") or doc.get("stringData")):
            keys = sorted(list((doc.get("data") or {}).keys()) + list((doc.get("stringData") or {}).keys()))
            problems.append(f"{rel}: {name}: inline secret values ({', '.join(keys)}); Secrets are "
                            "made by the operator with kubectl create secret, never in k8s/")
        if kind == "ConfigMap":
            for key, value in (doc.get("data") or {}).items():
                if "PRIVATE KEY" in str(value):
                    problems.append(f"{rel}: {name}: key {key} holds a PEM private key")
        if kind in WORKLOADS:
            workloads += 1
            p, s = check_workload(doc, rel)
            problems += p
            sidecars += s
    if rel in MUST_HAVE_SIDECAR and sidecars == 0:
        problems.append(f"{rel}: renders no {SIDECAR} native sidecar")
    return problems, workloads, sidecars


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    if not os.path.isdir(os.path.join(root, "k8s")):
        fail_now(f"{root}/k8s is not a directory")
    kubectl, version = check_kubectl()
    dirs = kustomizations(root)
    problems = [f"{rel}: missing (no kustomization.yaml)" for rel in MUST_HAVE_SIDECAR
                if rel not in dirs]
    print(f"render_test.py: kubectl kustomize ({version}) on {len(dirs)} kustomization(s) under {root}/k8s")
    for rel in dirs:
        docs, err = render(kubectl, root, rel)
        if docs is None:
            problems.append(f"{rel}: kubectl kustomize failed: {err}")
            print(f"  FAIL {rel}: does not render")
            continue
        p, workloads, sidecars = check_render(rel, docs)
        problems += p
        print(f"  {'FAIL' if p else 'ok  '} {rel}: {len(docs)} objects, {workloads} workload(s), "
              f"{sidecars} {SIDECAR} sidecar(s)")
    if problems:
        print(f"render_test.py: FAIL: {len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    print(f"render_test.py: every rendered workload passed ({len(dirs)} kustomizations)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
